"""Inference backends behind one protocol. Each adapter imports its engine lazily, in its own module."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edgekd.core.errors import BackendError
from edgekd.runtime.manifest import ModelManifest, TensorSpec

__all__ = ["Backend", "BACKENDS", "create_backend", "model_path_for"]

BACKENDS = ("auto", "onnx", "litert")


@runtime_checkable
class Backend(Protocol):
    """What the runtime needs from an inference engine."""

    name: str
    version: str
    threads: int  # intra-op threads the engine runs with (read back from it where it tells)
    input_specs: tuple[TensorSpec, ...]
    output_specs: tuple[TensorSpec, ...]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def _onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def resolve_backend(name: str, manifest: ModelManifest) -> str:
    """``auto`` -> ``onnx`` when onnxruntime is installed and the bundle has an ONNX model, else ``litert``."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    if manifest.model_file and _onnxruntime_available():
        return "onnx"
    if manifest.tflite_file:
        from edgekd.runtime.backends.litert import litert_available

        if litert_available():
            return "litert"
    raise BackendError('no inference engine for this bundle is installed; run: pip install "edgekd[onnx]" (or "edgekd[litert]")')


def model_path_for(backend: str, root: Path, manifest: ModelManifest) -> Path:
    if backend == "litert":
        if not manifest.tflite_file:
            raise BackendError(f"{root}: the bundle has no model.tflite; export one with `edgekd export tflite`, or use --backend onnx")
        return root / manifest.tflite_file
    return root / manifest.model_file


def create_backend(name: str, root: Path, manifest: ModelManifest, *, threads: int = 1) -> Backend:
    """Open the bundle's model with the named backend (``auto``, ``onnx`` or ``litert``)."""
    chosen = resolve_backend(name, manifest)
    path = model_path_for(chosen, root, manifest)
    if chosen == "litert":
        from edgekd.runtime.backends.litert import LiteRTBackend

        return LiteRTBackend(path, threads=threads)
    from edgekd.runtime.backends.onnx import OnnxBackend

    return OnnxBackend(path, threads=threads)
