"""``OnnxBackend``: onnxruntime, imported here and only here."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgekd.core.errors import BackendError
from edgekd.runtime.manifest import TensorSpec

__all__ = ["OnnxBackend", "StateStepper", "providers"]


def _spec(arg: object) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)  # type: ignore[attr-defined]
    dtype = str(arg.type).removeprefix("tensor(").removesuffix(")")  # type: ignore[attr-defined]
    return TensorSpec(name=arg.name, shape=shape, dtype="float32" if dtype == "float" else dtype)  # type: ignore[attr-defined]


def providers(available: list[str]) -> list[str]:
    """Execution providers: ``EDGEKD_ORT_PROVIDERS`` (comma separated, e.g. TensorrtExecutionProvider,CUDAExecutionProvider
    on a Jetson with onnxruntime-gpu) filtered to what this onnxruntime has, always ending with the CPU one. The default is
    CPU only: for models of tens of thousands of parameters a GPU launch costs more than the compute."""
    wanted = [p.strip() for p in os.environ.get("EDGEKD_ORT_PROVIDERS", "").split(",") if p.strip()]
    chosen = [p for p in wanted if p in available and p != "CPUExecutionProvider"]
    return chosen + ["CPUExecutionProvider"]


class OnnxBackend:
    """Runs an ONNX model on the CPU with a fixed thread count (1 by default: always-on work)."""

    name = "onnx"

    def __init__(self, model_path: Path, *, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError('onnxruntime is not installed; run: pip install "edgekd[onnx]"') from None
        self.version = str(ort.__version__)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(model_path), sess_options=opts, providers=providers(ort.get_available_providers()))
        except Exception as e:  # onnxruntime raises its own exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"{model_path}: onnxruntime cannot load the model ({first})") from None
        self.threads = int(self._sess.get_session_options().intra_op_num_threads)  # as the session uses it
        self.input_specs = tuple(_spec(a) for a in self._sess.get_inputs())
        self.output_specs = tuple(_spec(a) for a in self._sess.get_outputs())
        self._output_names = [o.name for o in self.output_specs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self._sess.run(self._output_names, feeds)
        return dict(zip(self._output_names, outs, strict=True))

    def state_stepper(self, frames_input: str, frames_shape: tuple[int, ...], states: list[tuple[str, str]], logits_output: str,
                      init: dict[str, np.ndarray]) -> StateStepper:
        """A per-stream stepper for a streaming-state model (see ``StateStepper``)."""
        return StateStepper(self, frames_input, frames_shape, states, logits_output, init)


class StateStepper:
    """One streaming-state model, stepped hop by hop with no per-call allocation.

    Inputs and outputs are bound once through ONNX Runtime's IOBinding to preallocated numpy buffers: the caller
    writes the new frames into ``frames`` and calls ``step()``, which returns the logits buffer (overwritten by the
    next step). States are double-buffered: step *n* reads set A and writes set B, step *n+1* the reverse, so an
    output never aliases an input of the same call.
    """

    def __init__(self, backend: OnnxBackend, frames_input: str, frames_shape: tuple[int, ...], states: list[tuple[str, str]],
                 logits_output: str, init: dict[str, np.ndarray]) -> None:
        import onnxruntime as ort

        sess = backend._sess
        self.frames = np.zeros(frames_shape, dtype=np.float32)
        n_logits = next(o for o in backend.output_specs if o.name == logits_output).shape[-1]
        self._logits = np.zeros((1, n_logits), dtype=np.float32)
        self._init = {i: np.ascontiguousarray(init[i]) for i, _ in states}  # float32, or uint8 for quantized states
        self._sets = [{i: v.copy() for i, v in self._init.items()} for _ in range(2)]
        self._keep = []  # OrtValues wrap the numpy buffers without copying: keep both alive together
        self._bindings = []
        for a in range(2):
            src, dst = self._sets[a], self._sets[1 - a]
            io = sess.io_binding()
            for name, arr in ((frames_input, self.frames), *((i, src[i]) for i, _ in states)):
                v = ort.OrtValue.ortvalue_from_numpy(arr)
                io.bind_ortvalue_input(name, v)
                self._keep.append(v)
            for name, arr in ((logits_output, self._logits), *((o, dst[i]) for i, o in states)):
                v = ort.OrtValue.ortvalue_from_numpy(arr)
                io.bind_ortvalue_output(name, v)
                self._keep.append(v)
            self._bindings.append(io)
        self._run = sess.run_with_iobinding
        self._parity = 0

    def reset(self) -> None:
        for i, v in self._init.items():
            self._sets[0][i][...] = v
        self._parity = 0

    def step(self) -> np.ndarray:
        self._run(self._bindings[self._parity])
        self._parity ^= 1
        return self._logits[0]
