"""``STUDENTS``: the one registry of architectures (students and the teacher), read by CLI, configs and docs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from edgekd.core.errors import ConfigError
from edgekd.train.catalog import CATALOG
from edgekd.train.students.bcresnet import BCResNet
from edgekd.train.students.cnn_teacher import CNNTeacher
from edgekd.train.students.dscnn import DSCNN
from edgekd.train.students.dscnn_stream import DSCNNStream
from edgekd.train.students.embedding_head import EmbeddingHead
from edgekd.train.students.sed import SedCausalCNN, SedCRNN

__all__ = ["STUDENTS", "Architecture", "build_model"]


@dataclass(frozen=True)
class Architecture:
    name: str
    role: str  # "student" or "teacher"
    builder: Callable[..., nn.Module]
    summary: str
    task: str = "kws"  # kws: one logit vector per window; sed: one per frame


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "dscnn": DSCNN,
    "dscnn-stream": DSCNNStream,
    "dscnn-stream-64": functools.partial(DSCNNStream, width=64),
    "bcresnet1": BCResNet,
    "cnn-teacher": CNNTeacher,
    "speech-embedding": EmbeddingHead,
    "sed-crnn": SedCRNN,
    "sed-causal-cnn": SedCausalCNN,
}
STUDENTS: dict[str, Architecture] = {n: Architecture(n, a.role, _BUILDERS[n], a.summary, a.task) for n, a in CATALOG.items()}


def build_model(arch: str, n_labels: int, n_mels: int, **kwargs: object) -> nn.Module:
    if arch not in STUDENTS:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of: {', '.join(STUDENTS)}")
    return STUDENTS[arch].builder(n_labels=n_labels, n_mels=n_mels, **kwargs)
