"""A second stage for a wake-word bundle: the speech-embedding teacher's head on the backbone, run only when asked.

A verifier folder (``edgekd.export.verifier.export_verifier``) holds the backbone's two ONNX files, ``head.onnx`` (the
teacher's main head: ``(N, 9, 96)`` embedding frames -> logits) and ``verifier.json`` (labels, the window, each
file's sha256, the backbone's licence). ``Verifier.probs(audio)`` gives the label posteriors of the last second of
``audio`` centred in 1.5 s of zeros, exactly as the host scores the teacher (``embedding_teacher_scorer``), with
numpy and onnxruntime only. A bundle whose manifest has a ``verifier`` block carries such a folder; its ``KwsStream``
asks the verifier where the student's smoothed score reaches the gate (docs/ARCHITECTURE.md, "Two stages").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import BundleError
from edgekd.runtime.embedding_backbone import BACKBONE_FILES, WINDOW_SAMPLES, EmbeddingBackbone
from edgekd.runtime.kws_post import softmax
from edgekd.runtime.manifest import sha256_file

__all__ = ["Verifier", "VERIFIER_FORMAT", "VERIFIER_META", "HEAD_FILE"]

VERIFIER_FORMAT = "edgekd-verifier-1"
VERIFIER_META = "verifier.json"
HEAD_FILE = "head.onnx"


def _read_meta(folder: Path) -> dict[str, Any]:
    """``verifier.json`` of ``folder``, checked: the format, every file present with its recorded sha256."""
    meta_path = folder / VERIFIER_META
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"{meta_path}: not a readable verifier description ({type(e).__name__}); export it again with "
                          "edgekd.export.verifier") from None
    if not isinstance(meta, dict) or meta.get("format") != VERIFIER_FORMAT:
        raise BundleError(f"{meta_path}: format is not {VERIFIER_FORMAT}; export the verifier again")
    labels, window = meta.get("labels"), meta.get("window_samples")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise BundleError(f"{meta_path}: 'labels' must be a non-empty list of names; export the verifier again")
    if not isinstance(window, int) or isinstance(window, bool) or not 0 < window <= WINDOW_SAMPLES:
        raise BundleError(f"{meta_path}: 'window_samples' must be a whole number in 1..{WINDOW_SAMPLES}; export the verifier again")
    files = meta.get("files")
    if not isinstance(files, dict) or set(files) != {*BACKBONE_FILES, HEAD_FILE}:
        raise BundleError(f"{meta_path}: 'files' must name {', '.join((*BACKBONE_FILES, HEAD_FILE))} with their sha256")
    for name, digest in files.items():
        path = folder / name
        if not path.is_file():
            raise BundleError(f"{path}: missing; copy the whole verifier folder")
        if sha256_file(path) != digest:
            raise BundleError(f"{path}: sha256 differs from {VERIFIER_META}; the file was changed or damaged, export the verifier again")
    return meta


class Verifier:
    """The teacher as a second stage: ``probs(audio)`` -> the posterior of every label for the last second."""

    def __init__(self, folder: str | Path, threads: int = 1) -> None:
        from edgekd.runtime.backends.onnx import OnnxBackend

        self.folder = Path(folder)
        self.meta = _read_meta(self.folder)
        self.labels: tuple[str, ...] = tuple(self.meta["labels"])
        self.window_samples = int(self.meta["window_samples"])
        self._backbone = EmbeddingBackbone(self.folder, threads=threads)
        self._head = OnnxBackend(self.folder / HEAD_FILE, threads=threads)

    def probs(self, audio: np.ndarray) -> np.ndarray:
        """Posteriors ``(labels,)`` of the last ``window_samples`` of ``audio`` (float in [-1, 1]; shorter audio is
        taken whole), centred in the backbone's window as the teacher saw its training clips."""
        x = np.asarray(audio, dtype=np.float32)[-self.window_samples :]
        frames = self._backbone.frames(x[None, :])
        logits = self._head.run({self._head.input_specs[0].name: frames})[self._head.output_specs[0].name][0]
        return softmax(logits.astype(np.float64))
