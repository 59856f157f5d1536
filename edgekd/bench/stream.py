"""``bench_stream``: what a bundle costs on this machine, streaming a WAV exactly as ``edgekd run`` does.

CPU time is process CPU (``time.process_time``) over the streaming loop only; the first repeat's first
second is a warm-up that is not measured; several repeats, medians reported. The WAV is read from disk a chunk at a
time (constant memory, as ``edgekd run --wav``); the time spent reading it is measured and left out, so the numbers
are the detector's. Runtime only (no torch).
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.bench.machine import machine_facts, provenance
from edgekd.core.errors import AudioFormatError, ConfigError
from edgekd.runtime.audio import WavFileSource
from edgekd.runtime.detector import load_model
from edgekd.runtime.kws_stream import KwsDetector
from edgekd.runtime.manifest import MANIFEST_NAME, sha256_file

__all__ = ["bench_stream", "REQUIRED_FIELDS"]

REQUIRED_FIELDS = ("cpu_ms_per_audio_s", "latency_ms", "rtf", "peak_rss_mb", "model_bytes", "params", "macs_per_inference",
                   "macs_per_audio_s", "backend", "backend_version", "threads", "machine", "bundle_sha256", "audio_seconds")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _timed_pass(det: Any, src: WavFileSource) -> tuple[float, float, list[float], int, int]:
    """One pass over the WAV through a fresh stream: (CPU s, wall s, per-inference ms, inferences, verifier calls), the
    time spent reading the file left out. The CPU counts a two-stage bundle's verifier; the per-inference ms do not."""
    stream = det.create_stream()
    stream.inference_ms = []
    blocks = src.samples()
    read_cpu = read_wall = 0.0
    c0, w0 = time.process_time(), time.perf_counter()
    while True:
        r0, rw0 = time.process_time(), time.perf_counter()
        x = next(blocks, None)
        read_cpu += time.process_time() - r0
        read_wall += time.perf_counter() - rw0
        if x is None:
            break
        stream.accept_waveform(x)
    cpu, wall = time.process_time() - c0 - read_cpu, time.perf_counter() - w0 - read_wall
    return cpu, wall, list(stream.inference_ms or []), stream.inferences, int(getattr(stream, "verifier_calls", 0))


def _warm_up(det: Any, src: WavFileSource, step: int) -> None:
    """The first second through a throwaway stream: first allocations, ONNX Runtime's first runs."""
    warm = det.create_stream()
    for i, x in enumerate(src.samples()):
        if i * step >= det.manifest.sample_rate:
            break
        warm.accept_waveform(x)


def _result(det: Any, bundle: str | Path, wav: str | Path, seconds: float, repeats: int, chunk_ms: int, cpu: list[float],
            wall: list[float], lat_all: list[float], infer: int, verifier_calls: int = 0) -> dict[str, Any]:
    m = det.manifest
    lat = np.asarray(lat_all)
    file = m.tflite_file if det.backend.name == "litert" else m.model_file
    st = det.streaming if isinstance(det, KwsDetector) and det.mode == "stream" else None
    if st is not None:  # the graph the stream runs
        file = st.tflite_model_file if det.backend.name == "litert" else st.model_file
    macs = det.macs_per_inference
    hist_counts, hist_edges = np.histogram(lat, bins=40)
    return {
        "bundle": m.name,
        "bundle_sha256": sha256_file(Path(bundle) / MANIFEST_NAME),
        "quantization": m.quantization if det.backend.name == "onnx" else m.provenance.get("tflite_quantization", m.quantization),
        "wav": str(wav),
        "audio_seconds": seconds,
        "repeats": repeats,
        "chunk_ms": chunk_ms,
        "cpu_ms_per_audio_s": 1000.0 * statistics.median(cpu) / seconds,
        "cpu_ms_per_audio_s_all": [1000.0 * c / seconds for c in cpu],
        "rtf": statistics.median(wall) / seconds,
        "inferences_per_audio_s": infer / seconds,
        "verifier_calls_per_audio_hour": verifier_calls * 3600.0 / seconds,  # a two-stage bundle's second stage (0: none)
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)), "p99": float(np.percentile(lat, 99)),
                       "max": float(lat.max()), "mean": float(lat.mean()), "n": int(lat.size),
                       "histogram": {"counts": hist_counts.tolist(), "edges_ms": hist_edges.tolist()}},
        "model_cpu_ms_per_audio_s": float(lat.sum() / repeats / seconds),
        "peak_rss_mb": _peak_rss_mb(),
        "model_bytes": (Path(bundle) / file).stat().st_size,
        "params": int(m.provenance.get("graph_params") or m.provenance.get("params") or 0),
        "macs_per_inference": macs,
        "macs_per_audio_s": macs * infer / seconds,
        "backend": det.backend.name,
        "mode": det.mode,
        "backend_version": det.backend.version,
        "threads": det.backend.threads,
        "stride_ms": det.stride_ms,
        "machine": machine_facts(),
        "provenance": provenance(f"CPU, latency and memory of streaming a WAV ({det.backend.name}, {det.mode})", bundle),
    }


def bench_stream(
    bundle: str | Path,
    wav: str | Path,
    *,
    backend: str = "auto",
    threads: int = 1,
    repeats: int = 5,
    chunk_ms: int = 80,
    notice: Any = None,
    mode: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    det = load_model(bundle, backend=backend, threads=threads, mode=mode)
    m = det.manifest
    if m.task not in ("kws", "wakeword", "sed"):
        raise ConfigError(f"{bundle}: task {m.task!r} is not supported by this bench (kws, wakeword, sed)")
    if repeats < 1:
        raise ConfigError("--repeats must be >= 1")
    step = max(1, m.sample_rate * chunk_ms // 1000)
    src = WavFileSource(wav, m.sample_rate, step, notice=notice)  # another rate: resampled once, held in memory
    try:
        seconds = src.frames / m.sample_rate
        if src.frames < det.window_samples:
            raise AudioFormatError(f"{wav}: {seconds:.2f} s of audio is shorter than one inference window "
                                   f"({det.window_samples / m.sample_rate:.2f} s); give a longer WAV")
        _warm_up(det, src, step)
        cpu: list[float] = []
        wall: list[float] = []
        lat_all: list[float] = []
        infer = calls = 0
        for _ in range(repeats):
            c, w, lat, infer, calls = _timed_pass(det, src)
            cpu.append(c)
            wall.append(w)
            lat_all.extend(lat)
            if progress:
                progress(len(cpu), repeats)
    finally:
        src.close()
    return _result(det, bundle, wav, seconds, repeats, chunk_ms, cpu, wall, lat_all, infer, calls)
