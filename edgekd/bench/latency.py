"""Per-inference latency of a loaded model (one window, batch 1), warm-up excluded."""

from __future__ import annotations

import time

import numpy as np

from edgekd.runtime.kws_stream import KwsDetector

__all__ = ["inference_latency_ms"]


def inference_latency_ms(detector: KwsDetector, *, runs: int = 300, warmup: int = 20, seed: int = 0) -> dict[str, float]:
    """p50/p90/p99/max wall milliseconds of ``detector.logits`` on one feature window."""
    p = detector.frontend_params
    x = np.random.default_rng(seed).normal(-6.0, 3.0, size=(1, detector.manifest.window_frames, p.n_mels)).astype(np.float32)
    for _ in range(warmup):
        detector.logits(x)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        detector.logits(x)
        times[i] = (time.perf_counter() - t0) * 1000.0
    return {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90)),
            "p99": float(np.percentile(times, 99)), "max": float(times.max()), "runs": runs}
