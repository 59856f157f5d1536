"""The speech-embedding backbone on the device side: numpy and onnxruntime only.

Two ONNX files (openWakeWord 0.4.0's ``melspectrogram.onnx``, 32 mel bands every 10 ms, and ``embedding_model.onnx``,
one 96-dim vector per 76 mel frames taken every 8 frames = 80 ms) turn a clip centred in a 1.5 s window of zeros into
``FRAMES`` = 9 embedding frames. The host's teacher (``edgekd.train.teachers.speech_embedding.SpeechEmbedding``) is
this class with the files of the installed wheel, so a verifier on a board computes exactly the teacher's frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError

__all__ = ["EmbeddingBackbone", "BACKBONE_FILES", "FRAMES", "DIM", "WINDOW_SAMPLES"]

WINDOW_SAMPLES = 24000  # 1.5 s at 16 kHz -> 147 mel frames -> 9 embeddings
MEL_WINDOW, MEL_STEP = 76, 8
FRAMES, DIM = 9, 96
BACKBONE_FILES = ("melspectrogram.onnx", "embedding_model.onnx")


class EmbeddingBackbone:
    """Frozen backbone from a folder holding ``BACKBONE_FILES``: ``frames(audio)`` -> ``(N, 9, 96)`` float32
    embedding frames for ``(N, S)`` clips in [-1, 1]."""

    def __init__(self, folder: Path, threads: int = 1) -> None:
        from edgekd.runtime.backends.onnx import OnnxBackend

        self._mel, self._emb = (OnnxBackend(Path(folder) / f, threads=threads) for f in BACKBONE_FILES)

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

    def mel_windows(self, audio: np.ndarray) -> np.ndarray:
        """The embedding model's input for ``(N, S)`` clips: ``(N * FRAMES, 76, 32, 1)`` float32 mel windows."""
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
        return wins.reshape(-1, MEL_WINDOW, mel.shape[-1], 1).astype(np.float32)

    def frames(self, audio: np.ndarray) -> np.ndarray:
        n = np.atleast_2d(np.asarray(audio)).shape[0]
        return self._run(self._emb, self.mel_windows(audio)).reshape(n, FRAMES, DIM).astype(np.float32)
