"""Measuring on the device. Same import rules as the runtime: stdlib and numpy only at import time."""

from edgekd.bench.latency import inference_latency_ms
from edgekd.bench.machine import cpu_model, machine_facts

__all__ = ["cpu_model", "inference_latency_ms", "machine_facts"]
