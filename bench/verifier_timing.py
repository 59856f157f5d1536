"""When a two-stage wake-word bundle's gate opens on real speakers, against where the phrase ends and where the verifier
would have heard it best.

    python bench/verifier_timing.py runs/ww-view_glass-s5

RUN is a finished ``edgekd train wakeword --phrase`` folder whose bundle has a verifier. Each real dev utterance of its
phrase (``../shared/realdev/wakeword_dev/<label>``, measurement only) is streamed alone with 1 s of silence on both
sides: the phrase's end (the last 10 ms frame within 30 dB of the loudest), the first inference at which the student's
smoothed score reaches the bundle's gate, the bundle's verified score (its peak over the utterance, as it runs) and the
verifier's best second searched over every 80 ms of the stream (``best_end_ms``: where that second ends). The
utterances the bundle's verifier turned down (verified peak under ``--low``, default 0.1) are set beside the others:
the median time from the phrase's end to the gate's opening and to the best second's end. Prints it and writes
``bench/results/verifier_timing_<label>.json``. A few minutes on 2 cores (the verifier runs some 40 times an utterance).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realdev_wakeword import DEFAULT_REALDEV  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def phrase_end_ms(x: np.ndarray, sr: int = 16000, within_db: float = 30.0) -> float:
    """The end of the last 10 ms frame whose energy is within ``within_db`` of the loudest frame's, in ms."""
    hop = sr // 100
    n = x.shape[0] // hop
    e = 10.0 * np.log10(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-10)
    return 10.0 * (int(np.flatnonzero(e > e.max() - within_db)[-1]) + 1)


def utterance(pair: Any, student: Any, verifier: Any, k: int, gate: float, x: np.ndarray) -> dict[str, Any]:
    """One utterance with 1 s of silence either side: times in ms from the stream's start."""
    pad = np.zeros(16000, np.float32)
    a = np.concatenate([pad, x, pad])
    t, s = student(a)
    _, v = pair(a)
    ends = np.arange(16000, a.shape[0] + 1, 1280)
    vs = np.array([float(verifier.probs(a[:e])[k]) for e in ends])
    opened = t[s >= gate]
    return {"end_ms": 1000.0 + phrase_end_ms(x), "gate_opens_ms": float(opened[0]) if opened.size else None,
            "verified": float(v.max()) if v.size else 0.0, "best_end_ms": float(ends[int(np.argmax(vs))] / 16), "best": float(vs.max())}


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _when(ms: float | None) -> str:
    return "-" if ms is None else f"{abs(ms):.0f} ms {'after' if ms >= 0 else 'before'}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished `edgekd train wakeword --phrase` folder whose bundle has a verifier")
    ap.add_argument("--low", type=float, default=0.1, help="a verified peak under this is a speaker the verifier turned down")
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.eval import wakeword as we
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.wav import load_audio

    bundle = args.run / "bundle"
    if not (bundle / "manifest.json").is_file() or not (args.run / "report.json").is_file():
        print(f"error: {args.run}: give a finished `edgekd train wakeword --phrase` folder (bundle/, report.json)", file=sys.stderr)
        return 2
    label = json.loads((args.run / "report.json").read_text())["labels"][0]
    folder = args.realdev / "wakeword_dev" / label
    if not folder.is_dir():
        print(f"notice: {folder} is absent: no real-voice numbers (measurement only; nothing else needs it)")
        return 0
    det = load_kws(bundle, backend="onnx", threads=1)
    if det.verifier is None:
        print(f"error: {bundle} has no verifier", file=sys.stderr)
        return 2
    pair = we.bundle_scorer(det, label)
    student = we.bundle_scorer(load_kws(bundle, backend="onnx", threads=1, verifier=False), label)
    gate = det.verifier_block.gates[label]
    k = det.verifier.labels.index(label)
    rows = []
    wavs = sorted(folder.glob("*.wav"))
    for i, w in enumerate(wavs):
        rows.append({"file": w.name, **utterance(pair, student, det.verifier, k, gate, load_audio(w, 16000))})
        print(f"\r{i + 1}/{len(wavs)} utterances", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    summary: dict[str, Any] = {}
    for name, keep in (("turned_down", lambda r: r["verified"] < args.low), ("others", lambda r: r["verified"] >= args.low)):
        group = [r for r in rows if keep(r)]
        opened = [r for r in group if r["gate_opens_ms"] is not None]
        summary[name] = {"utterances": len(group), "gate_opened": len(opened),
                         "median_gate_opens_after_end_ms": _median([r["gate_opens_ms"] - r["end_ms"] for r in opened]),
                         "median_best_second_ends_after_end_ms": _median([r["best_end_ms"] - r["end_ms"] for r in group]),
                         "best_second_over_0.5": sum(r["best"] > 0.5 for r in group)}
        g = summary[name]
        print(f"{name}: {g['utterances']} utterances ({g['gate_opened']} opened the gate); the gate opened a median "
              f"{_when(g['median_gate_opens_after_end_ms'])} the phrase's end, the verifier's best second ended "
              f"{_when(g['median_best_second_ends_after_end_ms'])} it and scored over 0.5 for {g['best_second_over_0.5']}")
    out = args.json or REPO / "bench" / "results" / f"verifier_timing_{label}.json"
    command = " ".join(["python bench/verifier_timing.py", *(sys.argv[1:] if argv is None else argv)])
    write_json(out, {"what": "when a two-stage bundle's gate opens on real dev speakers, against the phrase's end and the verifier's best "
                             "second (every 80 ms); utterances the verifier turned down beside the others",
                     "command": command, "date": datetime.date.today().isoformat(), "bundle": str(bundle), "gate": gate,
                     "low": args.low, "summary": summary, "utterances": rows, "machine": machine_facts()})
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
