"""``LiteRTBackend``: LiteRT (``ai_edge_litert``), falling back to ``tflite_runtime``; imported here only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import BackendError
from edgekd.runtime.manifest import TensorSpec

__all__ = ["LiteRTBackend", "litert_available", "interpreter_class"]


def interpreter_class() -> tuple[Any, str, str]:
    try:
        import ai_edge_litert
        from ai_edge_litert import interpreter as mod

        return mod.Interpreter, "ai-edge-litert", str(getattr(ai_edge_litert, "__version__", "?"))
    except ImportError:
        pass
    try:
        import tflite_runtime  # type: ignore[import-not-found]
        from tflite_runtime import interpreter as mod  # type: ignore[import-not-found]

        return mod.Interpreter, "tflite-runtime", str(getattr(tflite_runtime, "__version__", "?"))
    except ImportError:
        raise BackendError('LiteRT is not installed; run: pip install "edgekd[litert]" (or tflite-runtime)') from None


def litert_available() -> bool:
    try:
        interpreter_class()
    except BackendError:
        return False
    return True


def _spec(name: str, d: dict[str, Any]) -> TensorSpec:
    sig = d.get("shape_signature", d["shape"])
    dtype = np.dtype(d["dtype"]).name
    return TensorSpec(name=name, shape=tuple(int(v) for v in sig), dtype=dtype)


class LiteRTBackend:
    """Runs a .tflite model through its default signature; int8 inputs/outputs are (de)quantized here."""

    name = "litert"

    def __init__(self, model_path: Path, *, threads: int = 1) -> None:
        interp_cls, self.implementation, self.version = interpreter_class()
        try:
            self.threads = max(1, int(threads))  # the interpreter's num_threads
            self._interp = interp_cls(model_path=str(model_path), num_threads=self.threads)
            self._runner = self._interp.get_signature_runner()
        except Exception as e:  # the interpreter raises ValueError/RuntimeError with long texts
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"{model_path}: LiteRT cannot load the model ({first})") from None
        self._in = self._runner.get_input_details()
        self._out = self._runner.get_output_details()
        self.input_specs = tuple(_spec(k, v) for k, v in self._in.items())
        self.output_specs = tuple(_spec(k, v) for k, v in self._out.items())

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = {}
        for name, d in self._in.items():
            x = np.asarray(feeds[name])
            dt = np.dtype(d["dtype"])
            if dt.kind in "iu":
                scale, zp = d["quantization"]
                info = np.iinfo(dt)
                x = np.clip(np.round(x / scale) + zp, info.min, info.max).astype(dt)
            else:
                x = x.astype(dt, copy=False)
            args[name] = x
        outs = self._runner(**args)
        result = {}
        for name, d in self._out.items():
            y = outs[name]
            if np.dtype(d["dtype"]).kind in "iu":
                scale, zp = d["quantization"]
                y = (y.astype(np.float32) - zp) * np.float32(scale)
            result[name] = y
        return result
