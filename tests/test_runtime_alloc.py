"""Always-on means every hop, forever: in the steady state a hop of the streaming runtime allocates no array of its
own and the process does not grow (tracemalloc over 10,000 hops)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgekd.runtime.detector import load_model

MODELS = Path(__file__).resolve().parents[1] / "models"
SLACK = 4096  # bytes: Python's own small objects (ints, the detection list, bound methods), never an array of frames


def _traced(fn: Callable[[], object], n: int) -> tuple[int, int]:
    """(growth, peak above the start) of traced memory over ``n`` calls of ``fn``."""
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(n):
            fn()
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return end - start, peak - start


# the fp32 width-32 student at its 80 ms stride, and the default (int8 states) at its 320 ms stride on both backends
@pytest.mark.parametrize(("name", "backend"), [("kws12-dscnn-stream-kd", "onnx"), ("kws12-dscnn-stream64-kd-int8", "onnx"),
                                             ("kws12-dscnn-stream64-kd-int8", "litert")])
def test_a_streaming_hop_allocates_only_the_fft_scratch_and_nothing_grows(name: str, backend: str) -> None:
    det = load_model(MODELS / name, threads=1, backend=backend)
    assert det.mode == "stream"
    stream = det.create_stream()
    hop = det.postprocess.stride_ms * 16  # samples per model call: one chunk, one call
    chunk = (0.01 * np.random.default_rng(0).standard_normal(hop)).astype(np.float32)  # quiet noise: no keyword fires
    for _ in range(500):  # warm-up: buffers sized, ONNX Runtime's first few hundred runs done (it settles its caches)
        stream.accept_waveform(chunk)
    # numpy's real FFT keeps a scratch buffer per call (inside pocketfft): measure it on the same frames, alone
    frames = np.zeros((hop // 160, 512), np.float32)  # windowed frames, zero-padded to n_fft in place (as the frontend does)
    spec = np.zeros((hop // 160, 257), np.complex64)
    _, fft_peak = _traced(lambda: np.fft.rfft(frames, axis=-1, out=spec), 100)
    before = stream.inferences
    growth, peak = _traced(lambda: stream.accept_waveform(chunk), 10_000)
    assert stream.inferences - before == 10_000  # one model call per hop: the steady state was measured
    assert growth < SLACK, f"traced memory grew by {growth} bytes over 10,000 hops"
    assert peak < fft_peak + SLACK, f"a hop's peak was {peak} bytes above the start (the FFT scratch alone: {fft_peak})"
