"""A checkpoint (a teacher, or a student before export) scored in torch on a Speech Commands-layout folder.

Each checkpoint reads its own input features of the 98-frame training window: log-mels, or the speech embedding's
frames for a speech-embedding teacher. Several checkpoints score as one ensemble: the mean of their logits, as the
students distil from them (``edgekd.train.logit_cache.ensemble_logits``). Bundles are scored through the runtime by
``edgekd.eval.kws.evaluate_kws`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.train.features import FeatureSet

__all__ = ["checkpoint_logits", "checkpoint_accuracy", "ensemble_accuracy", "feature_set_logits"]


def checkpoint_logits(path: str | os.PathLike[str], data_dir: str | os.PathLike[str],
                      split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Logits ``(N, labels)`` of the checkpoint at ``path`` on the clips of ``split`` in ``data_dir``, and the index
    of each clip's true label ``(N,)``."""
    from edgekd.core.units import WINDOW_FRAMES
    from edgekd.data.augment import fit_to_length
    from edgekd.data.speech_commands import SpeechCommands
    from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.loop import predict_logits

    ck = Checkpoint.load(path)
    clips = SpeechCommands(data_dir).clips(ck.labels, split)
    if not clips:
        raise ConfigError(f"{data_dir}: no clips of the labels {', '.join(ck.labels)} in split {split!r}")
    params = FrontendParams.from_dict(ck.frontend)
    n = (WINDOW_FRAMES - 1) * params.hop_samples + params.window_samples  # the training window's samples
    audio = np.stack([fit_to_length(c.load(params.sample_rate), n) for c in clips])
    if ck.config.get("input", "logmel") == "speech-embedding":
        from edgekd.train.teachers.speech_embedding import SpeechEmbedding

        x = SpeechEmbedding().frames(audio)
    else:
        fe = LogMelFrontend(params)
        x = np.stack([fe.features(a) for a in audio])
    return predict_logits(ck.build(), x), np.array([ck.labels.index(c.label) for c in clips])


def feature_set_logits(path: str | os.PathLike[str], fs: FeatureSet, *, cache_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Logits of the checkpoint at ``path`` (its main head) on the rows of the log-mel feature set ``fs``; a
    speech-embedding teacher reads the embedding frames of the same views (built, or read from ``cache_dir``)."""
    from edgekd.train.teachers import TorchTeacher
    from edgekd.train.teachers.embedding_teacher import embedding_inputs

    t = TorchTeacher(path)
    return t.logits(np.asarray(embedding_inputs(fs, cache_dir=cache_dir).x if t.input == "speech-embedding" else fs.x))


def ensemble_accuracy(scored: Sequence[tuple[np.ndarray, np.ndarray]], names: Sequence[object] = ()) -> float:
    """Top-1 accuracy of the mean logits of ``checkpoint_logits`` results on the same clips (one result: its own)."""
    if not scored:
        raise ConfigError("no checkpoint to score")
    y = scored[0][1]
    if any(s[1].shape != y.shape or np.any(s[1] != y) for s in scored[1:]):
        raise ConfigError(f"{', '.join(map(str, names)) or 'the checkpoints'}: they do not share their labels; they cannot score as one ensemble")
    return float(np.mean(np.mean([s[0] for s in scored], axis=0).argmax(-1) == y))


def checkpoint_accuracy(paths: Sequence[str | os.PathLike[str]], data_dir: str | os.PathLike[str], split: str = "all") -> float:
    """Top-1 accuracy of one checkpoint, or of several as an ensemble (the mean of their logits), on ``data_dir``."""
    return ensemble_accuracy([checkpoint_logits(p, data_dir, split) for p in paths], paths)
