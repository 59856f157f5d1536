"""The one registry of architectures, students and teachers apart: ``STUDENTS`` (``models/students/``, what ships to a
board) and ``TEACHERS`` (``models/teachers/``, what students learn from). ``ARCHITECTURES`` is both, in catalog order;
``build_model`` builds any of them. Names, roles and summaries come from ``edgekd.train.catalog`` (no torch)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from edgekd.core.errors import ConfigError
from edgekd.train.catalog import CATALOG
from edgekd.train.models.students.bcresnet import BCResNet
from edgekd.train.models.students.dscnn import DSCNN
from edgekd.train.models.students.dscnn_stream import DSCNNStream
from edgekd.train.models.students.sed_causal_cnn import SedCausalCNN
from edgekd.train.models.teachers.cnn_teacher import CNNTeacher
from edgekd.train.models.teachers.embedding_head import EmbeddingHead
from edgekd.train.models.teachers.sed_crnn import SedCRNN

__all__ = ["ARCHITECTURES", "STUDENTS", "TEACHERS", "Architecture", "build_model"]


@dataclass(frozen=True)
class Architecture:
    name: str
    role: str  # "student" or "teacher"
    builder: Callable[..., nn.Module]
    summary: str
    task: str = "kws"  # kws: one logit vector per window; sed: one per frame


_STUDENT_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "dscnn": DSCNN,
    "dscnn-stream": DSCNNStream,
    "dscnn-stream-64": functools.partial(DSCNNStream, width=64),
    "dscnn-stream-128": functools.partial(DSCNNStream, width=128),
    "bcresnet1": BCResNet,
    "sed-causal-cnn": SedCausalCNN,
}
_TEACHER_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "cnn-teacher": CNNTeacher,
    "speech-embedding": EmbeddingHead,
    "sed-crnn": SedCRNN,
}


def _registry(builders: dict[str, Callable[..., nn.Module]], role: str) -> dict[str, Architecture]:
    out = {}
    for name, info in CATALOG.items():
        if name in builders:
            if info.role != role:
                raise AssertionError(f"{name} is a {info.role} in the catalog but built as a {role}")
            out[name] = Architecture(name, role, builders[name], info.summary, info.task)
    return out


STUDENTS: dict[str, Architecture] = _registry(_STUDENT_BUILDERS, "student")
TEACHERS: dict[str, Architecture] = _registry(_TEACHER_BUILDERS, "teacher")
ARCHITECTURES: dict[str, Architecture] = {n: (STUDENTS.get(n) or TEACHERS[n]) for n in CATALOG}


def build_model(arch: str, n_labels: int, n_mels: int, **kwargs: object) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch].builder(n_labels=n_labels, n_mels=n_mels, **kwargs)
