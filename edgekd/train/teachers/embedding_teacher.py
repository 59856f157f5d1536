"""A teacher that has heard people: an MLP head on the frozen speech embedding, with cross-fitted fold heads.

``train_embedding_teacher`` trains, on the speech-embedding frames of the same augmented views the students see:
the main head on every training clip, and ``folds`` more heads, head ``f`` without the clips of fold ``f``. A clip's
fold comes from its file name (``fold_of``), so any later user of the same data finds it again. The logit cache
labels each training row of that data with the head that never saw its clip (k-fold cross-fitting: a head's targets
on its own training clips are nearly one-hot, which leaves a student little to learn); anything else gets the main
head. The checkpoint stores the head config, the backbone files' sha256 and licence, and the training files' digest.
``extra_unknown`` adds audio windows that are not clip files (a wake-word verifier's gate-open windows of running
speech) as ``_unknown_`` rows of the main head's training set, by their frames of the same backbone. ``heads`` > 1
trains that many main heads on the same rows, from seeds ``cfg.seed``, ``cfg.seed + 1``, ...; the checkpoint's model
answers with the mean of their logits (``EmbeddingHead`` members).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.train.checkpoint import Checkpoint
from edgekd.train.config import TrainConfig
from edgekd.train.dist import DistContext
from edgekd.train.features import FeatureSet, aligned_feature_set

if TYPE_CHECKING:
    from edgekd.eval.wakeword import Scorer

__all__ = ["ARCH", "INPUT", "fold_of", "train_embedding_teacher", "embedding_inputs", "embedding_teacher_scorer", "with_unknown_windows"]

ARCH = "speech-embedding"
INPUT = "speech-embedding"


def fold_of(fs: FeatureSet, k: int, seen: Collection[str] | None = None) -> np.ndarray:
    """Fold ``0..k-1`` of every row of ``fs``, from a hash of its source clip's file name (all views of a clip agree);
    with ``seen`` (the files a teacher was trained on), -1 (its main head) for the rows of clips it never saw."""
    per_clip = np.array([int(hashlib.sha1(f.encode()).hexdigest()[:8], 16) % k for f in fs.files], dtype=np.int64)
    if seen is not None:
        known = set(seen)
        per_clip[np.array([f not in known for f in fs.files], dtype=bool)] = -1
    return per_clip[fs.clip]


def embedding_inputs(fs: FeatureSet, *, cache_dir: str | os.PathLike[str] | None = None, workers: int = 2,
                     dist: DistContext | None = None) -> FeatureSet:
    """The speech-embedding frames aligned with ``fs`` (built once by rank 0 under torchrun, then read by all)."""
    d = dist or DistContext()
    with d.main_first():
        bar = None
        if d.is_main:
            from edgekd.core.progress import Progress

            bar = Progress("speech-embedding features", unit="clip")
        try:
            return aligned_feature_set(fs, INPUT, cache_dir=cache_dir, workers=workers, progress=bar.callback() if bar else None)
        finally:
            if bar is not None:
                bar.close()


def with_unknown_windows(fs: FeatureSet, audio: np.ndarray, repeat: int = 1, threads: int = 1) -> FeatureSet:
    """``fs`` (speech-embedding frames) with the frames of each one-second window in ``audio`` (N, samples) added as an
    ``_unknown_`` row ``repeat`` times; each window is a source clip of its own, named ``window:<sha256 prefix>``."""
    from edgekd.data import UNKNOWN
    from edgekd.train.teachers.speech_embedding import SpeechEmbedding

    if UNKNOWN not in fs.labels:
        raise ConfigError(f"extra negative windows need an {UNKNOWN} label; this data has {', '.join(fs.labels)}")
    if audio.ndim != 2 or repeat < 1:
        raise ConfigError(f"extra negative windows must be (N, samples) audio and repeat >= 1, got shape {audio.shape} and {repeat}")
    if not len(audio):
        return fs
    emb = SpeechEmbedding(threads=threads)
    frames = np.concatenate([emb.frames(audio[i : i + 64]) for i in range(0, len(audio), 64)]).astype(fs.x.dtype)
    first = int(fs.clip.max()) + 1 if len(fs) else 0
    clip = first + np.arange(len(audio), dtype=fs.clip.dtype)
    names = tuple(f"window:{hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]}" for a in audio)
    key = f"{fs.key}-windows{hashlib.sha256(''.join(names).encode()).hexdigest()[:12]}x{repeat}"
    y = np.full(len(audio), fs.labels.index(UNKNOWN), fs.y.dtype)
    return FeatureSet(np.concatenate([fs.x, *[frames] * repeat]), np.concatenate([fs.y, *[y] * repeat]), np.concatenate([fs.clip, *[clip] * repeat]),
                      fs.labels, key, tuple(fs.files) + names, fs.spec)


def train_embedding_teacher(
    train: FeatureSet,
    validation: FeatureSet,
    test: FeatureSet,
    out: str | os.PathLike[str],
    cfg: TrainConfig,
    *,
    folds: int = 2,
    hidden: int = 256,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    dist: DistContext | None = None,
    provenance: dict[str, Any] | None = None,
    extra_unknown: np.ndarray | None = None,
    extra_repeat: int = 1,
    heads: int = 1,
) -> Checkpoint:
    """Train the main head and ``folds`` cross-fitting heads on the embedding frames of the log-mel sets given;
    ``extra_unknown`` (N, samples): audio windows the main head also learns as ``_unknown_``, ``extra_repeat`` times each
    (only without ``folds``: the cross-fitting heads label clip files); ``heads``: main heads of seeds ``cfg.seed + j``
    whose mean logit the checkpoint answers with."""
    from edgekd.train.kws_objective import train_model
    from edgekd.train.loop import accuracy
    from edgekd.train.models.teachers.embedding_head import EmbeddingHead
    from edgekd.train.profile import count_macs, count_params
    from edgekd.train.teachers.speech_embedding import DIM, FRAMES, backbone_identity

    if folds == 1 or folds < 0:
        raise ConfigError(f"--folds must be 0 (no cross-fitting) or at least 2, got {folds}")
    if heads < 1:
        raise ConfigError(f"heads must be at least 1, got {heads}")
    d = dist or DistContext()
    if extra_unknown is not None and len(extra_unknown) and folds:
        raise ConfigError("extra negative windows are for a head without cross-fitting heads (folds 0)")
    sets = [embedding_inputs(s, cache_dir=cache_dir, dist=d) for s in (train, validation, test)]
    etrain, eval_, etest = sets
    if extra_unknown is not None:
        etrain = with_unknown_windows(etrain, extra_unknown, extra_repeat, threads=max(1, cfg.threads))
    cfg = replace(cfg, arch=ARCH, specaugment=False)
    model, history = train_model(cfg, etrain, eval_, progress=progress, dist=d)
    full = EmbeddingHead(len(train.labels), DIM, FRAMES, hidden=hidden, folds=folds, members=heads - 1)
    state = dict(model.state_dict())
    for j in range(1, heads):  # the ensemble's other members: the same rows, other draws
        m, _ = train_model(replace(cfg, seed=cfg.seed + j), etrain, eval_, progress=progress, dist=d)
        for k, v in m.state_dict().items():
            state[f"members.{j - 1}.{0 if k.startswith('norm.') else 1}.{k.split('.', 1)[1]}"] = v
    fold_acc = []
    if folds:
        fold = fold_of(etrain, folds)
        for f in range(folds):
            seen = etrain.rows(fold != f, f"{etrain.key}-fold{f}of{folds}")
            m, _ = train_model(replace(cfg, seed=cfg.seed + 1 + f), seen, eval_, progress=progress, dist=d)
            for k, v in m.state_dict().items():
                if k.startswith("mlp."):
                    state[f"folds.{f}.{k.removeprefix('mlp.')}"] = v
            # each fold head on the clips it never saw (their augmented views)
            fold_acc.append(accuracy(m, etrain.rows(fold == f, f"{etrain.key}-heldout{f}of{folds}"), d))
    full.load_state_dict(state)
    ckpt = Checkpoint(
        arch=ARCH, labels=tuple(train.labels), n_mels=DIM, frontend=_frontend(), window_frames=FRAMES,
        state_dict={k: v.contiguous() for k, v in full.state_dict().items()},
        config=dict(cfg.to_dict(), input=INPUT, folds=folds, heads=heads,
                    arch_kwargs={"frames": FRAMES, "hidden": hidden, "folds": folds, "members": heads - 1}),
        metrics={"val_accuracy": history["best_val_accuracy"], "test_accuracy_torch": accuracy(full.eval(), etest, d),
                 "crossfit_accuracy": fold_acc, "params": heads * count_params(model),  # what forward runs: every member
                 "macs_per_inference": heads * count_macs(model, (1, FRAMES, DIM)),  # the heads'; the frozen backbone runs besides
                 "train_seconds": history["train_seconds"], "train_steps": history["steps"], "final_train_loss": history["final_loss"],
                 "processes": d.world_size},
        provenance=dict(provenance or {}, backbone=backbone_identity(), train_files_sha256=train.files_sha256, train_files=list(train.files),
                        fold_rule="sha1(clip file name) % folds"),
    )
    if d.is_main:
        ckpt.save(out)
    d.barrier()
    return ckpt


def embedding_teacher_scorer(checkpoint: str | os.PathLike[str], label: str, hop: int = 1280, batch: int = 64,
                             window: int | None = None, frames_cache: str | os.PathLike[str] | None = None) -> Scorer:
    """A speech-embedding teacher (``train_embedding_teacher``'s checkpoint, main head) as a wake-word scorer for
    ``edgekd.eval.wakeword``: every ``hop`` samples (80 ms), P(``label``) of the last second of audio, centred in
    1.5 s of zeros exactly as the teacher saw its training clips; times are the windows' ends (ms), unsmoothed.
    ``window``: samples of audio each score sees instead of one second (at most the backbone's 1.5 s, which then holds
    no zeros): how much a longer view than the student's helps. Host-side (torch, the backbone's two ONNX files): how
    a teacher does on the same streams as its student. ``frames_cache``: a folder where each stream's backbone frames
    are kept (``.npy``, named by the audio's sha256, the window, the hop and the backbone files), so that scoring
    another head on the same streams runs the head alone (the backbone is ~35 ms per window on one core, the head
    well under 1 ms)."""
    import torch

    from edgekd.core.units import CLIP_SAMPLES, SAMPLE_RATE
    from edgekd.eval.wakeword import as_array
    from edgekd.train.teachers.speech_embedding import DIM, FRAMES, WINDOW_SAMPLES, SpeechEmbedding, backbone_identity, check_backbone

    n = CLIP_SAMPLES if window is None else window
    if not 0 < n <= WINDOW_SAMPLES:
        raise ConfigError(f"window {n}: give 1..{WINDOW_SAMPLES} samples (the backbone's 1.5 s window)")

    ck = Checkpoint.load(checkpoint)
    if ck.arch != ARCH:
        raise ConfigError(f"{checkpoint}: a {ck.arch} checkpoint, not a speech-embedding teacher")
    if label not in ck.labels:
        raise ConfigError(f"--label {label!r} is not one of the teacher's labels: {', '.join(ck.labels)}")
    check_backbone(ck.provenance.get("backbone"), str(checkpoint))
    head = ck.build()  # the main head (eval mode)
    k = ck.labels.index(label)
    backbone = SpeechEmbedding()

    def stream_frames(x: np.ndarray, ends: np.ndarray) -> np.ndarray:
        parts = [backbone.frames(np.stack([x[e - n : e] for e in ends[i : i + batch]])) for i in range(0, ends.shape[0], batch)]
        return np.concatenate(parts) if parts else np.zeros((0, FRAMES, DIM), np.float32)

    ident = "" if frames_cache is None else \
        hashlib.sha256(repr((n, hop, sorted(backbone_identity()["files"].items()))).encode()).hexdigest()[:16]

    def score(audio: Any) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(as_array(audio), dtype=np.float32)
        ends = np.arange(n, x.shape[0] + 1, hop)
        if frames_cache is None:
            frames = stream_frames(x, ends)
        else:
            from edgekd.core.fsutil import atomic_write

            path = Path(frames_cache) / f"{hashlib.sha256(x.tobytes()).hexdigest()[:24]}-{ident}.npy"
            if path.is_file():
                frames = np.load(path)
            else:
                frames = stream_frames(x, ends)
                atomic_write(path, lambda tmp: _save_npy(tmp, frames))
        out = []
        with torch.no_grad():
            for i in range(0, frames.shape[0], 4096):
                out.append(torch.softmax(head(torch.from_numpy(frames[i : i + 4096])), dim=-1)[:, k].numpy())
        return ends * (1000.0 / SAMPLE_RATE), (np.concatenate(out) if out else np.zeros(0))

    return score


def _save_npy(path: str, a: np.ndarray) -> None:
    with open(path, "wb") as f:  # np.save on a name would add ".npy" to the temp name
        np.save(f, a)


def _frontend() -> dict[str, Any]:
    """The student frontend the teacher's logits are cached against (the cache index checks it)."""
    from edgekd.runtime.frontend import FrontendParams

    return FrontendParams().to_dict()
