"""What the verifier budget buys on real voices: a finished run's two-stage bundle made again with other budgets.

    python bench/verifier_budgets.py runs/ww-smart_mirror --budgets 2000
    python bench/verifier_budgets.py runs/ww-smart_mirror/draws/seed1 --budgets 1500 2000

RUN is a finished ``edgekd train wakeword --phrase`` folder. For each budget B, ``RUN/verifier-budgets/b<B>/`` gets
hard links of RUN's material and trained stages (``data/``, ``cache/``, ``mined/``, the teacher, the students and the
verifier head; the recipe never writes a file in place) and RUN's recipe runs there with ``verifier_budget`` B
(``edgekd.recipes.custom_wakeword``): the int8 export, the gate (the lowest student score within B verifier calls per
hour of the validation speech) and the threshold are made again, and the verifier head where its gate-open windows
change (a budget over 1,000 cuts them at its own, lower gate: a head trained again is also another draw of the head,
``bench/verifier_seeds.py`` measures how far that alone moves it); everything before them is RUN's. Each bundle, RUN's own included, is then measured as it
runs on the real dev streams of ``bench/realdev_wakeword.py`` (measurement only): FRR at 0.5 / 1 / 2 / 5 FA/h against
the real negatives (``real``) and with RUN's synthesized test speech (``real_and_synthesized``, the issue's
yardstick), its gate, and how often it asks the verifier per hour of the real negatives and of the synthesized test
speech (the CPU the budget buys: ``bench/verifier_cost.py`` times a call, ``bench/wakeword_peer.py --cpu-only`` the
whole bundle against openWakeWord). A budget already made is reused. Writes
``bench/results/verifier_budgets_<label>.json``. About 10 min per budget on 2 cores. When ``../shared/realdev``
lacks the phrase it says so and exits 0 before making anything.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realdev_wakeword import DEFAULT_REALDEV  # noqa: E402
from realdev_wakeword_seeds import _recipe, dev_streams, yardstick_row  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MADE_AGAIN = {"bundle", "report.json", "det.png", "draws", "verifier-seeds", "verifier-budgets"}


def link_run(run: Path, out: Path) -> None:
    """``out`` as hard links of RUN's files but those the budget changes (``MADE_AGAIN``); made under a temporary name,
    then renamed; kept when already there."""
    if out.is_dir():
        return
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for item in sorted(run.iterdir()):
        if item.name in MADE_AGAIN:
            continue
        if item.is_dir():
            shutil.copytree(item, partial / item.name, copy_function=os.link)
        else:
            os.link(item, partial / item.name)
    partial.rename(out)


def calls_per_hour(bundle: Path, label: str, wav: Path) -> float:
    """How often ``bundle`` asks its verifier per hour of ``wav`` (the gate side alone, as ``KwsPostprocessor`` counts)."""
    from edgekd.eval import wakeword as we
    from edgekd.runtime.audio import wav_blocks
    from edgekd.runtime.detector import load_kws

    block = json.loads((bundle / "manifest.json").read_text())["verifier"]
    det = load_kws(bundle, backend="onnx", threads=1, verifier=False)
    timelines, seconds = we.score_files(we.bundle_scorer(det, label), [wav], lambda p: wav_blocks(p, 16000), concatenate=True)
    return we.verifier_calls_per_hour(timelines[""][1], seconds, float(block["gates"][label]), int(block.get("every", 1)),
                                      block.get("max_calls"), int(block.get("hold", 0)))


def budget_bundle(run: Path, r: Any, budget: float) -> Path:
    """RUN's recipe with ``verifier_budget`` ``budget`` in ``RUN/verifier-budgets/b<B>``; returns its bundle (reused)."""
    from edgekd.recipes.custom_wakeword import run_phrase_wakeword

    out = run / "verifier-budgets" / f"b{budget:g}"
    if (out / "report.json").is_file() and (out / "bundle" / "manifest.json").is_file():
        return out / "bundle"
    link_run(run, out)
    run_phrase_wakeword(out, replace(r, verifier_budget=budget), say=lambda m: print(m, flush=True))
    return out / "bundle"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished `edgekd train wakeword --phrase` folder with a two-stage bundle")
    ap.add_argument("--budgets", type=float, nargs="+", required=True, metavar="CALLS",
                    help="verifier calls per hour of validation speech (--verifier-budget) to make the bundle again with (RUN's own is measured too)")
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "realdev_wakeword", help="where the real negatives WAV is kept")
    ap.add_argument("--json", type=Path, default=None, help="default: bench/results/verifier_budgets_<label>.json")
    args = ap.parse_args(argv)

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json

    manifest = args.run / "bundle" / "manifest.json"
    if not manifest.is_file() or not (args.run / "report.json").is_file():
        print(f"error: {args.run}: no bundle/manifest.json or report.json; give a finished `edgekd train wakeword --phrase ... --out RUN` "
              "folder", file=sys.stderr)
        return 2
    if not json.loads(manifest.read_text()).get("verifier"):
        print(f"error: {args.run}/bundle has no verifier (made with --verifier-budget 0); give a two-stage run", file=sys.stderr)
        return 2
    if min(args.budgets) <= 0:
        print("error: --budgets must be > 0 (a budget of 0 is the student alone: measure it with bench/realdev_wakeword.py)", file=sys.stderr)
        return 2
    r = _recipe(args.run)
    label = r.phrases[0].replace(" ", "_")
    streams = dev_streams(args.realdev, args.work, args.run, label)
    if streams is None:
        return 0
    dev, real, synth = streams
    rows = []
    for budget in [r.verifier_budget, *(b for b in args.budgets if b != r.verifier_budget)]:
        bundle = args.run / "bundle" if budget == r.verifier_budget else budget_bundle(args.run, r, budget)
        gate = float(json.loads((bundle / "manifest.json").read_text())["verifier"]["gates"][label])
        row = {"budget": budget, "gate": gate, "bundle": str(bundle),
               "verifier_calls_per_hour": {"real": calls_per_hour(bundle, label, real),
                                           **({"synthesized": calls_per_hour(bundle, label, synth[0])} if synth else {})}}
        print(f"budget {budget:g}: gate {gate:.2f}, verifier calls per hour " + ", ".join(f"{v:.0f} ({k})" for k, v in row["verifier_calls_per_hour"].items()),
              flush=True)
        rows.append({**row, **yardstick_row(bundle, label, dev, real, synth, f"budget {budget:g}")})
    out = args.json or REPO / "bench" / "results" / f"verifier_budgets_{label}.json"
    command = " ".join(["python bench/verifier_budgets.py", *(sys.argv[1:] if argv is None else argv)])
    write_json(out, {"what": "a run's two-stage bundle made again with other verifier budgets (same material, teacher and students; "
                             "gate and threshold made again, the verifier head where the budget changes its windows), each measured as it "
                             "runs on real dev speakers",
                     "command": command, "date": datetime.date.today().isoformat(), "run": str(args.run), "rows": rows,
                     "machine": machine_facts()})
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
