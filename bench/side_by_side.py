"""CPU per second of audio of several bundles, streamed alternately in one process on the same WAV (1 thread).

    python bench/side_by_side.py models/*/ --wav runs/bench/stream.wav --json bench/results/side_by_side.json

Each bundle streams the whole WAV in 80 ms chunks exactly as `edgekd run` does, with its own tuned post-processing
(stride, smoothing); the bundles take turns, ``--rounds`` times, and the median is reported, so a slower or busier
moment of a shared machine falls on all of them alike. Runtime only (no torch).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--wav", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import edgekd
    from edgekd.bench.machine import provenance
    from edgekd.core.fsutil import write_json
    from edgekd.runtime.wav import load_audio

    x = load_audio(args.wav, 16000)
    seconds = x.shape[0] / 16000
    dets = {b.name if b.name else b.parent.name: edgekd.load_model(b, threads=1) for b in args.bundles}

    def run(det: edgekd.Detector) -> float:
        s = det.create_stream()
        c0 = time.process_time()
        for i in range(0, x.shape[0], 1280):
            s.accept_waveform(x[i : i + 1280])
        return 1000.0 * (time.process_time() - c0) / seconds

    for det in dets.values():  # warm-up
        run(det)
    cpu: dict[str, list[float]] = {n: [] for n in dets}
    for _ in range(args.rounds):
        for n, det in dets.items():
            cpu[n].append(run(det))
    rows = []
    for n, det in dets.items():
        m = det.manifest
        macs = det.macs_per_inference
        rows.append({"bundle": n, "mode": det.mode, "quantization": m.quantization, "stride_ms": det.postprocess.stride_ms,
                     "cpu_ms_per_audio_s": statistics.median(cpu[n]), "cpu_ms_per_audio_s_all": cpu[n],
                     "macs_per_audio_s": macs * 1000 // det.postprocess.stride_ms})
        print(f"{n:32s} {rows[-1]['cpu_ms_per_audio_s']:7.3f} CPU ms per audio s  ({det.mode}, {m.quantization}, stride "
              f"{det.postprocess.stride_ms} ms, {rows[-1]['macs_per_audio_s'] / 1e6:.1f} M MACs/s)")
    if args.json is not None:
        write_json(args.json, {"rows": rows, "wav": str(args.wav), "audio_seconds": seconds, "rounds": args.rounds, "threads": 1,
                               "provenance": provenance("CPU ms per audio second of each bundle, alternating in one process, median of rounds")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
