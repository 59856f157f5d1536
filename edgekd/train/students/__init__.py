"""``STUDENTS``: the one registry of architectures (students and the teacher), read by CLI, configs and docs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from edgekd.errors import ConfigError
from edgekd.train.students.bcresnet import BCResNet
from edgekd.train.students.cnn_teacher import CNNTeacher
from edgekd.train.students.dscnn import DSCNN
from edgekd.train.students.dscnn_stream import DSCNNStream
from edgekd.train.students.sed import SedCausalCNN, SedCRNN

__all__ = ["STUDENTS", "Architecture", "build_model"]


@dataclass(frozen=True)
class Architecture:
    name: str
    role: str  # "student" or "teacher"
    builder: Callable[..., nn.Module]
    summary: str
    task: str = "kws"  # kws: one logit vector per window; sed: one per frame


STUDENTS: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("dscnn", "student", DSCNN, "DS-CNN, width 64, 4 depthwise-separable blocks (~23k params)"),
        Architecture("dscnn-stream", "student", DSCNNStream, "DS-CNN, width 32, valid time kernels: also a streaming graph with state (~7.5k params)"),
        Architecture("bcresnet1", "student", BCResNet, "BC-ResNet-1 style, broadcasted residual blocks, width 1.25 (~11k params)"),
        Architecture("cnn-teacher", "teacher", CNNTeacher, "wide VGG-style CNN teacher (~0.6M params)"),
        Architecture("sed-crnn", "teacher", SedCRNN, "SED teacher: CNN (frequency pooling) + bidirectional GRU, frame logits (~0.3M params)", "sed"),
        Architecture("sed-causal-cnn", "student", SedCausalCNN, "SED student: causal depthwise-separable CNN, frame logits, streamable (~27k params)", "sed"),
    )
}


def build_model(arch: str, n_labels: int, n_mels: int, **kwargs: object) -> nn.Module:
    if arch not in STUDENTS:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of: {', '.join(STUDENTS)}")
    return STUDENTS[arch].builder(n_labels=n_labels, n_mels=n_mels, **kwargs)
