"""Inference backends behind one protocol. Each adapter imports its engine lazily, in its own module."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edgekd.errors import BackendError
from edgekd.manifest import TensorSpec

__all__ = ["Backend", "BACKENDS", "create_backend"]

BACKENDS = ("onnx", "auto")


@runtime_checkable
class Backend(Protocol):
    """What the runtime needs from an inference engine."""

    name: str
    version: str

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]: ...

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]: ...

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def create_backend(name: str, model_path: Path, *, threads: int = 1) -> Backend:
    """Open ``model_path`` with the named backend (``onnx`` or ``auto``)."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    suffix = model_path.suffix.lower()
    if suffix != ".onnx":
        raise BackendError(f"{model_path}: no backend for {suffix or 'extensionless'} model files")
    from edgekd.runtime.backends.onnx import OnnxBackend

    return OnnxBackend(model_path, threads=threads)
