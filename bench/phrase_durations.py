"""How long a run's training positives are against the real dev utterances of the same phrase (and how high).

    python bench/phrase_durations.py runs/ww-smart_mirror-xfit

RUN is a finished ``edgekd train wakeword --phrase`` folder. Active length (``realdev_wakeword_misses.active_seconds``:
first to last 10 ms frame within 30 dB of the loudest) and median pitch (``pitch_hz``) of every training clip of the
phrase (``RUN/data/clips/<label>``, minus the validation and test lists) and of every real utterance
(``../shared/realdev/wakeword_dev/<label>``, measurement only, when present). Training clips are 1 s long, so a
longer utterance shows as a filled clip (active >= 0.97 s). Prints and writes
``bench/results/phrase_durations_<label>.json``. About a minute.
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
from realdev_wakeword_misses import active_seconds, pitch_hz  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def describe(files: list[Path]) -> dict[str, Any]:
    from edgekd.runtime.wav import load_audio

    audio = [load_audio(f, 16000) for f in files]
    d = np.array([active_seconds(x) for x in audio])
    h = np.array([pitch_hz(x) for x in audio])
    h = h[np.isfinite(h)]
    return {"clips": len(files), "active_s_p10_p50_p90": [round(float(v), 3) for v in np.percentile(d, [10, 50, 90])],
            "share_longer_than_1s": float(np.mean(d > 1.0)), "share_filling_1s": float(np.mean(d >= 0.97)),
            "pitch_hz_p10_p50_p90": [round(float(v), 1) for v in np.percentile(h, [10, 50, 90])] if h.size else None,
            "share_pitch_over_190hz": float(np.mean(h > 190.0)) if h.size else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished `edgekd train wakeword --phrase` folder")
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.recipes.custom_wakeword import phrase_labels, training_clips

    report = args.run / "report.json"
    if not report.is_file():
        raise SystemExit(f"error: {args.run}: no report.json; give a finished `edgekd train wakeword --phrase ... --out RUN` folder")
    labels = phrase_labels(tuple(json.loads(report.read_text())["recipe"]["phrases"]))[:-2]
    rows: dict[str, Any] = {}
    for label in labels:
        rows[label] = {"training_positives": describe(training_clips(args.run / "data" / "clips", label))}
        real = sorted((args.realdev / "wakeword_dev" / label).glob("*.wav"))
        if real:
            rows[label]["real_dev"] = describe(real)
        for k, v in rows[label].items():
            print(f"{label} {k}: {v}")
    out = args.json or REPO / "bench" / "results" / f"phrase_durations_{labels[0]}.json"
    command = " ".join(["python bench/phrase_durations.py", *(sys.argv[1:] if argv is None else [str(a) for a in argv])])
    write_json(out, {"what": "active length and median pitch of a run's training positives and of the real dev utterances",
                     "command": command, "date": datetime.date.today().isoformat(), "run": str(args.run), "labels": rows,
                     "machine": machine_facts()})
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
