"""Soak: one hour of audio streamed from a file through one Stream, faster than real time; does memory grow?

    python bench/soak.py --bundle models/kws12-dscnn-kd-int8 --minutes 60 --out bench/results/<machine>/soak.json

The hour is the 40 s keyword WAV (bench/run_bench.sh makes it) looped with fresh noise each pass, fed in
80 ms chunks exactly as `edgekd run` does. Peak RSS is sampled after every minute of audio; the result is
the growth between minute 5 and the last minute (goal: under 5 MB), with detections per minute and CPU
ms per audio second.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=REPO / "models" / "kws12-dscnn-kd-int8")
    ap.add_argument("--wav", type=Path, default=REPO / "runs" / "bench" / "stream.wav")
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import numpy as np

    import edgekd
    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import atomic_write_text
    from edgekd.runtime.wav import load_audio

    det = edgekd.load_model(args.bundle, backend=args.backend, threads=1)
    base = load_audio(args.wav, 16000)
    rng = np.random.default_rng(0)
    stream = det.create_stream()
    chunk, minute = 1280, 16000 * 60
    fed, next_mark, total_dets = 0, minute, 0
    marks: list[dict[str, float]] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while fed < args.minutes * minute:
        x = base + (0.002 * rng.standard_normal(base.shape[0])).astype(np.float32)
        for i in range(0, x.shape[0], chunk):
            total_dets += len(stream.accept_waveform(x[i : i + chunk]))
            fed += min(chunk, x.shape[0] - i)
            if fed >= next_mark:
                marks.append({"minute": next_mark // minute, "rss_mb": _rss_mb(), "detections": total_dets,
                              "cpu_s": time.process_time() - cpu0})
                next_mark += minute
                if len(marks) % 10 == 0:
                    print(f"minute {marks[-1]['minute']}: RSS {marks[-1]['rss_mb']:.1f} MB, {total_dets} detections", flush=True)
            if fed >= args.minutes * minute:
                break
    wall = time.perf_counter() - wall0
    at5 = next(m for m in marks if m["minute"] == min(5, len(marks)))
    last = marks[-1]
    result = {
        "what": "RSS over a long stream through one Stream (faster than real time)",
        "command": "python bench/soak.py (make bench)",
        "bundle": det.manifest.name, "backend": det.backend.name, "audio_minutes": args.minutes,
        "rss_growth_mb_minute5_to_end": last["rss_mb"] - at5["rss_mb"], "goal_mb": 5.0,
        "cpu_ms_per_audio_s": 1000.0 * last["cpu_s"] / (60.0 * last["minute"]),
        "wall_seconds": wall, "speed_x_realtime": 60.0 * args.minutes / wall,
        "detections": total_dets, "marks": marks, "machine": machine_facts(),
    }
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"RSS growth minute 5 -> {last['minute']}: {result['rss_growth_mb_minute5_to_end']:+.2f} MB; "
          f"{result['cpu_ms_per_audio_s']:.2f} CPU ms per audio s; {wall:.0f} s for {args.minutes} min -> {args.out}")


if __name__ == "__main__":
    main()
