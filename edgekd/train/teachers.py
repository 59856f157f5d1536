"""Teachers: ``TorchTeacher`` (an edgekd checkpoint) and ``CachedTeacher`` (its logits precomputed on disk)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgekd.errors import ConfigError
from edgekd.fsutil import atomic_write
from edgekd.manifest import sha256_file
from edgekd.train.features import FeatureSet

__all__ = ["Teacher", "TorchTeacher", "CachedTeacher"]


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


@dataclass
class CachedTeacher:
    """Teacher logits for every row of one feature set, tagged with who made them for which data."""

    logits_: np.ndarray
    identity: str
    features_key: str
    labels: tuple[str, ...]

    def logits(self, x: np.ndarray) -> np.ndarray:  # rows must be the cached set's rows
        raise ConfigError("CachedTeacher returns logits by row; use .for_set(feature_set)")

    def for_set(self, fs: FeatureSet) -> np.ndarray:
        if fs.key != self.features_key or len(fs) != self.logits_.shape[0]:
            raise ConfigError("the teacher-logit cache was made for other features; rebuild it (delete the cache file)")
        if tuple(fs.labels) != tuple(self.labels):
            raise ConfigError(f"teacher labels {self.labels} differ from the data labels {fs.labels}")
        return self.logits_

    @classmethod
    def build(cls, teacher: Teacher, fs: FeatureSet, cache_file: str | os.PathLike[str] | None = None) -> CachedTeacher:
        if cache_file is not None and Path(cache_file).is_file():
            z = np.load(cache_file)
            if str(z["identity"]) == teacher.identity and str(z["features_key"]) == fs.key:
                return cls(z["logits"], teacher.identity, fs.key, tuple(teacher.labels))
        if tuple(teacher.labels) != tuple(fs.labels):
            raise ConfigError(f"teacher labels {teacher.labels} differ from the data labels {fs.labels}")
        ct = cls(teacher.logits(fs.x).astype(np.float32), teacher.identity, fs.key, tuple(teacher.labels))
        if cache_file is not None:
            def write(tmp: str) -> None:
                with open(tmp, "wb") as f:
                    np.savez(f, logits=ct.logits_, identity=ct.identity, features_key=ct.features_key)

            atomic_write(cache_file, write)
        return ct
