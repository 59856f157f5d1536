"""Teachers: ``TorchTeacher`` (an edgekd checkpoint: a log-mel CNN, or a head on the frozen speech embedding, see
``embedding_teacher``). Their logits are cached by ``edgekd.train.logit_cache``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgekd.runtime.manifest import sha256_file

__all__ = ["Teacher", "TorchTeacher", "check_teachers"]


class Teacher(Protocol):
    identity: str
    labels: tuple[str, ...]
    input: str  # the feature kind it reads: "logmel" or "speech-embedding"

    def logits(self, x: np.ndarray, fold: np.ndarray | None = None) -> np.ndarray: ...


class TorchTeacher:
    """A frozen teacher from an edgekd checkpoint; always in eval mode."""

    def __init__(self, path: str | os.PathLike[str], threads: int = 2) -> None:
        import torch

        from edgekd.train.checkpoint import Checkpoint

        torch.set_num_threads(max(1, threads))
        ckpt = Checkpoint.load(path)
        self.labels = ckpt.labels
        self.identity = sha256_file(path)
        self.input = str(ckpt.config.get("input", "logmel"))
        _check_backbone_of(ckpt, path)
        self._model = ckpt.build().eval()

    def logits(self, x: np.ndarray, fold: np.ndarray | None = None) -> np.ndarray:
        """Logits of every row of ``x``; ``fold`` (per row, -1 = main head) picks cross-fitting heads where the model has them."""
        from edgekd.train.loop import predict_logits

        if fold is None:
            return predict_logits(self._model, x)
        out = np.empty((x.shape[0], len(self.labels)), dtype=np.float32)
        for f in np.unique(fold):
            m = fold == f
            out[m] = predict_logits(self._model.head_for(int(f)), x[m])  # type: ignore[operator]
        return out


def _check_backbone_of(ckpt: Any, path: str | os.PathLike[str]) -> None:
    if str(ckpt.config.get("input", "logmel")) == "speech-embedding":
        from edgekd.train.teachers.speech_embedding import check_backbone

        check_backbone(ckpt.provenance.get("backbone"), str(path))


def check_teachers(paths: list[Path] | None) -> None:
    """Before any data is read: every speech-embedding teacher among ``paths`` was trained on the installed backbone
    files (one line otherwise; ``TorchTeacher`` checks again when it loads)."""
    from edgekd.train.checkpoint import Checkpoint

    for p in paths or []:
        _check_backbone_of(Checkpoint.load(p), p)
