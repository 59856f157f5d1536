"""CPU of one verifier call, side by side: bundles' ``verifier/`` folders timed in one process, interleaved.

    python bench/verifier_cost.py runs/ww-view_glass/bundle runs/ww-view_glass/verifier-seeds/heads3-seed0/bundle

Each bundle's verifier (``edgekd.runtime.verifier.Verifier``, one onnxruntime thread: what runs on a board) scores
the same seconds of light noise ``--calls`` times; the bundles take turns call by call, so both see the same machine
state. Reports the median and mean process-CPU milliseconds per call and each bundle's ratio to the first; writes
``bench/results/verifier_cost.json`` (or ``--json``). A head ensemble adds heads on the same backbone frames, so its
ratio is how much of a call the heads are.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", type=Path, nargs="+", help="bundles with a verifier/ folder (the first is the reference)")
    ap.add_argument("--calls", type=int, default=300, help="calls per bundle (default 300)")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "verifier_cost.json")
    args = ap.parse_args(argv)
    if args.calls < 10:
        ap.error("--calls must be >= 10")

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.runtime.manifest import ModelManifest
    from edgekd.runtime.verifier import Verifier

    verifiers = []
    for b in args.bundles:
        block = ModelManifest.load(b).verifier if (b / "manifest.json").is_file() else None
        if not block:
            print(f"error: {b}: not a bundle with a verifier (no manifest.json with a verifier block)", file=sys.stderr)
            return 2
        verifiers.append(Verifier(b / block["dir"], threads=1))
    audio = (0.01 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    for v in verifiers:  # warm-up: sessions' first runs allocate
        for _ in range(5):
            v.probs(audio)
    spent: list[list[float]] = [[] for _ in verifiers]
    for _ in range(args.calls):
        for i, v in enumerate(verifiers):
            t = time.process_time()
            v.probs(audio)
            spent[i].append(1000.0 * (time.process_time() - t))
    ref = float(np.median(spent[0]))
    rows = [{"bundle": str(b), "median_cpu_ms": float(np.median(s)), "mean_cpu_ms": float(np.mean(s)),
             "ratio_to_first": float(np.median(s)) / ref} for b, s in zip(args.bundles, spent, strict=True)]
    for row in rows:
        print(f"{row['bundle']}: {row['median_cpu_ms']:.2f} CPU ms per call (median), x{row['ratio_to_first']:.3f}")
    command = " ".join(["python bench/verifier_cost.py", *(sys.argv[1:] if argv is None else argv)])
    write_json(args.json, {"what": "process CPU per verifier call (1 s of audio, one onnxruntime thread), bundles interleaved call by call",
                           "command": command, "date": datetime.date.today().isoformat(), "calls": args.calls, "rows": rows,
                           "machine": machine_facts()})
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
