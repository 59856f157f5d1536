"""Teachers: ``TorchTeacher`` (an edgekd checkpoint). Their logits are cached by ``edgekd.train.logit_cache``."""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from edgekd.manifest import sha256_file

__all__ = ["Teacher", "TorchTeacher"]


class Teacher(Protocol):
    identity: str
    labels: tuple[str, ...]

    def logits(self, x: np.ndarray) -> np.ndarray: ...


class TorchTeacher:
    """A frozen teacher from an edgekd checkpoint; always in eval mode."""

    def __init__(self, path: str | os.PathLike[str], threads: int = 2) -> None:
        import torch

        from edgekd.train.checkpoint import Checkpoint

        torch.set_num_threads(max(1, threads))
        ckpt = Checkpoint.load(path)
        self.labels = ckpt.labels
        self.identity = sha256_file(path)
        self._model = ckpt.build().eval()

    def logits(self, x: np.ndarray) -> np.ndarray:
        from edgekd.train.loop import predict_logits

        return predict_logits(self._model, x)
