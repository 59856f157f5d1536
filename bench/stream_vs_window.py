"""Whole-window vs streaming-state inference: CPU ms per second of audio, same bundle, same WAV, one run.

    python bench/stream_vs_window.py --bundle models/kws12-dscnn-stream-kd --wav runs/bench/stream.wav --out OUT.json

Both modes run alternately (5 rounds, 1 thread, 80 ms chunks); medians reported; detections compared. Also
reported: the model calls alone (wall ms of the inferences per audio second, 1 thread) and the frontend alone
(the log-mel cost both modes share).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--wav", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import edgekd
    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import atomic_write_text
    from edgekd.runtime.wav import load_audio

    x = load_audio(args.wav, 16000)
    seconds = x.shape[0] / 16000
    dets = {m: edgekd.load_model(args.bundle, mode=m, threads=1) for m in ("whole", "stream")}

    def run(det: edgekd.Detector) -> tuple[float, float, list[tuple[str, int]]]:
        s = det.create_stream()
        s.inference_ms = []
        c0 = time.process_time()
        found = [d for i in range(0, x.shape[0], 1280) for d in s.accept_waveform(x[i : i + 1280])]
        return time.process_time() - c0, sum(s.inference_ms), [(d.label, d.t_ms) for d in found]

    from edgekd.runtime.frontend import LogMelFrontend

    def frontend_only() -> float:
        fe = LogMelFrontend(dets["stream"].frontend_params)
        c0 = time.process_time()
        for i in range(0, x.shape[0], 1280):
            fe.push(x[i : i + 1280])
        return time.process_time() - c0

    for det in dets.values():
        run(det)  # warm-up
    cpu: dict[str, list[float]] = {m: [] for m in dets}
    model: dict[str, list[float]] = {m: [] for m in dets}
    fe_cpu: list[float] = []
    found: dict[str, list[tuple[str, int]]] = {}
    for _ in range(args.rounds):
        for m, det in dets.items():
            c, inf_ms, found[m] = run(det)
            cpu[m].append(1000.0 * c / seconds)
            model[m].append(inf_ms / seconds)
        fe_cpu.append(1000.0 * frontend_only() / seconds)
    med = {m: statistics.median(v) for m, v in cpu.items()}
    med_model = {m: statistics.median(v) for m, v in model.items()}
    res = {"what": "CPU ms per audio second, whole-window vs streaming-state, same bundle and WAV, alternating, 1 thread",
           "command": "python bench/stream_vs_window.py (make bench)", "bundle": dets["stream"].manifest.name,
           "stride_ms": dets["stream"].postprocess.stride_ms, "audio_seconds": seconds,
           "cpu_ms_per_audio_s": med, "rounds": cpu, "speedup_stream_over_whole": med["whole"] / med["stream"],
           "model_calls_ms_per_audio_s": med_model, "speedup_model_calls": med_model["whole"] / med_model["stream"],
           "frontend_cpu_ms_per_audio_s": statistics.median(fe_cpu),
           "macs_per_inference": {m: det.macs_per_inference for m, det in dets.items()},
           "same_detections": found["whole"] == found["stream"], "detections": len(found["stream"]), "machine": machine_facts()}
    atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")
    print(f"whole window {med['whole']:.2f} vs streaming state {med['stream']:.2f} CPU ms per audio s "
          f"({res['speedup_stream_over_whole']:.1f}x); model calls alone {med_model['whole']:.2f} vs {med_model['stream']:.2f} "
          f"({res['speedup_model_calls']:.1f}x); shared frontend {res['frontend_cpu_ms_per_audio_s']:.2f}; "
          f"same detections: {res['same_detections']} -> {args.out}")


if __name__ == "__main__":
    main()
