"""Which synthesized voices a wake-word student fails on, beside its teacher: peaks on the held-out test positives by engine.

    python bench/wakeword_engines.py runs/ww-computer
    python bench/wakeword_engines.py runs/ww-computer --bundle runs/ww-computer/bundle-first --threshold 0.86

RUN is an ``edgekd train wakeword --phrase`` folder with its ``teacher.pt`` and evaluation material (``data/eval``);
the recipe's stages need not all be done. Each test positive (``data/eval/test/<label>``; positive ``i`` is spoken by
engine ``i % n`` of ``eval.json``'s test engines) is scored alone with 1 s of silence after it: the bundle's peak
smoothed posterior (default ``RUN/bundle``, else ``RUN/bundle-first``) and the teacher's peak P(label) (its 1 s view,
every 80 ms). Per engine: median peak, and the share at or above ``--threshold`` (default: the bundle's own). A
teacher that scores an engine's voices high where its student does not is a distillation gap, not a data gap.
Prints and writes ``bench/results/synth_engines_<label>.json``. About 2 min on 2 cores (the teacher's backbone
over every 80 ms of the positives).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _peaks(scorer: Any, wavs: list[Path]) -> np.ndarray:
    from edgekd.runtime.wav import load_audio

    pad = np.zeros(16000, np.float32)
    return np.array([float(np.max(scorer(np.concatenate([load_audio(w, 16000), pad]))[1])) for w in wavs])


def by_engine(peaks: np.ndarray, engines: list[str], threshold: float) -> dict[str, dict[str, float | int]]:
    """Median peak and share at or above ``threshold`` per engine (positive ``i`` is ``engines[i % len(engines)]``)."""
    out: dict[str, dict[str, float | int]] = {}
    for k, e in enumerate(engines):
        q = peaks[k :: len(engines)]
        out[e] = {"positives": int(q.size), "median_peak": float(np.median(q)), "detected": float(np.mean(q >= threshold))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="an `edgekd train wakeword --phrase` folder (teacher.pt, data/eval)")
    ap.add_argument("--bundle", type=Path, default=None, help="the bundle to score (default: RUN/bundle, else RUN/bundle-first)")
    ap.add_argument("--threshold", type=float, default=None, help="detection threshold for both (default: the bundle's own)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    run = args.run
    spec_path = run / "data" / "eval" / "eval.json"
    if not spec_path.is_file() or not (run / "teacher.pt").is_file():
        raise SystemExit(f"error: {run}: no data/eval/eval.json or teacher.pt; give an `edgekd train wakeword --phrase ... --out RUN` folder")
    spec = json.loads(spec_path.read_text())
    bundle = args.bundle or next((b for b in (run / "bundle", run / "bundle-first") if (b / "manifest.json").is_file()), None)
    if bundle is None or not (bundle / "manifest.json").is_file():
        raise SystemExit(f"error: {run}: no bundle yet (bundle/ or bundle-first/); give --bundle")

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.eval.wakeword import bundle_scorer
    from edgekd.recipes.custom_wakeword import phrase_labels
    from edgekd.runtime.detector import load_kws
    from edgekd.train.teachers.embedding_teacher import embedding_teacher_scorer

    label = phrase_labels(tuple(spec["recipe"]["phrases"]))[0]
    engines = list(spec["engines"]["test"])
    wavs = sorted((run / "data" / "eval" / "test" / label).glob("*.wav"))
    if not wavs:
        raise SystemExit(f"error: no test positives under {run}/data/eval/test/{label}")
    det = load_kws(bundle, backend="onnx")
    thr = det.postprocess.threshold_for(label) if args.threshold is None else args.threshold
    out_json = args.json or REPO / "bench" / "results" / f"synth_engines_{label}.json"
    result: dict[str, Any] = {"what": "peak score on each held-out synthesized test positive (1 s of silence after it), by engine: "
                                      "the bundle (smoothed posterior) and its teacher (P(label), 1 s view, every 80 ms)",
                              "command": " ".join(["python bench/wakeword_engines.py", *(sys.argv[1:] if argv is None else [str(a) for a in argv])]),
                              "date": datetime.date.today().isoformat(), "run": str(run), "bundle": str(bundle), "label": label,
                              "threshold": thr, "recipe": spec["recipe"]}
    for name, scorer in (("bundle", bundle_scorer(det, label)), ("teacher", embedding_teacher_scorer(run / "teacher.pt", label))):
        result[name] = by_engine(_peaks(scorer, wavs), engines, thr)
        print(f"{name}: " + "; ".join(f"{e} median peak {v['median_peak']:.2f}, {100 * v['detected']:.0f}% >= {thr:.2f}"
                                      for e, v in result[name].items()), flush=True)
    result["machine"] = machine_facts()
    write_json(out_json, result)
    print(f"-> {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
