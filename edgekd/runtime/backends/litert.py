"""``LiteRTBackend``: LiteRT (``ai_edge_litert``), falling back to ``tflite_runtime``; imported here only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import BackendError
from edgekd.runtime.manifest import TensorSpec

__all__ = ["LiteRTBackend", "LiteRTStateStepper", "litert_available", "interpreter_class"]


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
        self.model_path = Path(model_path)
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

    def state_stepper(self, frames_input: str, frames_shape: tuple[int, ...], states: list[tuple[str, str]], logits_output: str,
                      init: dict[str, np.ndarray]) -> LiteRTStateStepper:
        """A per-stream stepper for a streaming-state model (see ``LiteRTStateStepper``)."""
        return LiteRTStateStepper(self, frames_input, frames_shape, states, logits_output, init)


class LiteRTStateStepper:
    """One int8 streaming-state .tflite model stepped hop by hop, with its own interpreter (the interpreter holds the
    tensors, so streams cannot share one).

    Same contract as the ONNX stepper: write the new frames (float) into ``frames``, call ``step()``, read the
    returned logits (a buffer the next step overwrites). The frames are quantized into a preallocated int8 buffer;
    int8 states go back in exactly as they came out (each state output carries its input's quantization).
    """

    def __init__(self, backend: LiteRTBackend, frames_input: str, frames_shape: tuple[int, ...], states: list[tuple[str, str]],
                 logits_output: str, init: dict[str, np.ndarray]) -> None:
        interp_cls, _, _ = interpreter_class()
        it = interp_cls(model_path=str(backend.model_path), num_threads=backend.threads)
        ins, outs = backend._in, backend._out
        it.resize_tensor_input(ins[frames_input]["index"], list(frames_shape), strict=True)
        it.allocate_tensors()
        self._it = it
        self.frames = np.zeros(frames_shape, dtype=np.float32)
        self._fq = np.zeros(frames_shape, dtype=np.float32)  # scratch for the quantization
        self._frames_q = np.zeros(frames_shape, dtype=ins[frames_input]["dtype"])
        scale, zp = ins[frames_input]["quantization"]
        self._f_inv, self._f_zp = np.float32(1.0 / scale), np.float32(zp)
        self._frames_idx = ins[frames_input]["index"]
        self._pairs = [(ins[i]["index"], outs[o]["index"], i) for i, o in states]
        self._init = {i: np.ascontiguousarray(init[i]) for i, _ in states}
        self._states = {i: v.copy() for i, v in self._init.items()}
        lo = outs[logits_output]
        self._logits_idx = lo["index"]
        self._l_scale, self._l_zp = np.float32(lo["quantization"][0]), np.float32(lo["quantization"][1])
        self._logits = np.zeros(int(lo["shape"][-1]), dtype=np.float32)

    def reset(self) -> None:
        for i, v in self._init.items():
            self._states[i][...] = v

    def step(self) -> np.ndarray:
        it = self._it
        np.multiply(self.frames, self._f_inv, out=self._fq)
        np.rint(self._fq, out=self._fq)
        self._fq += self._f_zp
        np.clip(self._fq, -128, 127, out=self._fq)
        np.copyto(self._frames_q, self._fq, casting="unsafe")
        it.set_tensor(self._frames_idx, self._frames_q)
        for i_in, _, name in self._pairs:
            it.set_tensor(i_in, self._states[name])
        it.invoke()
        for _, i_out, name in self._pairs:
            np.copyto(self._states[name], it.tensor(i_out)())  # a view into the interpreter, copied at once
        np.subtract(it.tensor(self._logits_idx)()[0], self._l_zp, out=self._logits, casting="unsafe")
        self._logits *= self._l_scale
        return self._logits
