"""The speech-embedding backbone: Google's speech embedding (Lin et al., ICASSP 2020) as openWakeWord 0.4.0 ships it.

Two ONNX files from the installed ``openwakeword`` wheel, run through onnxruntime, frozen:
``melspectrogram.onnx`` (32 mel bands every 10 ms) and ``embedding_model.onnx`` (one 96-dim vector per 76 mel
frames, taken every 8 frames = 80 ms). A KWS clip (the 16,000 samples of a 98-frame window) is centred in a
1.5 s window of zeros, which gives ``FRAMES`` = 9 embedding frames: the teacher head's input is ``(9, 96)``.

Licence, as the wheel states it (checked in ``openwakeword-0.4.0.dist-info/METADATA``): the embedding model "is
provided by Google as a TFHub module under an Apache-2.0 license" and was re-implemented by openWakeWord; the same
text says its included pre-trained models are CC BY-NC-SA 4.0 "due to the inclusion of datasets with unknown or
restrictive licensing", which concerns the wake-word heads trained on such data. ``LICENCE_NOTE`` carries this into
every checkpoint and model card that uses the backbone; nothing of the wheel is vendored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.runtime.manifest import sha256_file

__all__ = ["SpeechEmbedding", "FRAMES", "DIM", "WINDOW_SAMPLES", "LICENCE_NOTE", "backbone_identity"]

WINDOW_SAMPLES = 24000  # 1.5 s at 16 kHz -> 147 mel frames -> 9 embeddings
MEL_WINDOW, MEL_STEP = 76, 8
FRAMES, DIM = 9, 96
FILES = ("melspectrogram.onnx", "embedding_model.onnx")
LICENCE_NOTE = ("speech-embedding backbone: openwakeword==0.4.0's melspectrogram.onnx + embedding_model.onnx, a re-implementation of "
                "Google's speech_embedding TFHub module (Apache-2.0 per the wheel's README; the wheel's CC BY-NC-SA 4.0 clause "
                "names its pre-trained models trained on restrictively licensed data, i.e. the wake-word heads, none of which "
                "edgekd uses). Run from the installed wheel, never vendored.")


def backbone_identity(models_dir: Path | None = None) -> dict[str, Any]:
    """What a teacher built on the backbone records: each file's sha256, the source and the licence note."""
    from edgekd.train.teachers.oww import oww_models_dir

    d = models_dir or oww_models_dir()
    return {"name": "speech-embedding", "source": "openwakeword==0.4.0", "files": {f: sha256_file(d / f) for f in FILES},
            "window_samples": WINDOW_SAMPLES, "frames": FRAMES, "dim": DIM, "licence": LICENCE_NOTE}


class SpeechEmbedding:
    """Frozen backbone: ``frames(audio)`` -> ``(N, 9, 96)`` float32 embedding frames for ``(N, S)`` clips in [-1, 1]."""

    def __init__(self, models_dir: Path | None = None, threads: int = 1) -> None:
        from edgekd.runtime.backends.onnx import OnnxBackend
        from edgekd.train.teachers.oww import oww_models_dir

        d = models_dir or oww_models_dir()
        self._mel, self._emb = (OnnxBackend(d / f, threads=threads) for f in FILES)

    @staticmethod
    def _run(model: Any, x: np.ndarray) -> np.ndarray:
        return model.run({model.input_specs[0].name: x})[model.output_specs[0].name]

    @staticmethod
    def centred(audio: np.ndarray) -> np.ndarray:
        """Clips ``(N, S)`` centred in ``WINDOW_SAMPLES`` of zeros (longer clips keep their middle), int16 scale."""
        a = np.atleast_2d(np.asarray(audio, dtype=np.float32))
        s = a.shape[1]
        out = np.zeros((a.shape[0], WINDOW_SAMPLES), dtype=np.float32)
        if s >= WINDOW_SAMPLES:
            k = (s - WINDOW_SAMPLES) // 2
            out[:] = a[:, k : k + WINDOW_SAMPLES]
        else:
            k = (WINDOW_SAMPLES - s) // 2
            out[:, k : k + s] = a
        return out * 32767.0

    def frames(self, audio: np.ndarray) -> np.ndarray:
        x = self.centred(audio)
        # one clip per call: the mel model clips to 80 dB below the maximum of its whole input, batch included, so a
        # batch would make each clip's features depend on its neighbours
        mel = np.concatenate([self._run(self._mel, x[i : i + 1]).reshape(1, -1, 32) for i in range(x.shape[0])])
        mel = mel / 10.0 + 2.0
        starts = range(0, mel.shape[1] - MEL_WINDOW + 1, MEL_STEP)
        wins = np.stack([mel[:, s : s + MEL_WINDOW] for s in starts], axis=1)  # (N, F, 76, 32)
        if wins.shape[1] != FRAMES:
            raise ConfigError(f"the speech embedding gave {wins.shape[1]} frames for a {WINDOW_SAMPLES}-sample window, expected {FRAMES}: "
                              f"is this openwakeword 0.4.0's melspectrogram.onnx?")
        emb = self._run(self._emb, wins.reshape(-1, MEL_WINDOW, mel.shape[-1], 1).astype(np.float32))
        return emb.reshape(x.shape[0], FRAMES, DIM).astype(np.float32)
