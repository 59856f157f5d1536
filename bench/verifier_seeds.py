"""How much of a two-stage wake-word number is the verifier's draw: the run's verifier head trained again with other seeds.

    python bench/verifier_seeds.py runs/ww-view_glass --seeds 0 1 2
    python bench/verifier_seeds.py runs/ww-view_glass --seeds 0 3 --heads 3   # ensembles: heads of seeds 0-2, 3-5

RUN is a finished ``edgekd train wakeword --phrase`` folder whose bundle has a verifier. For each seed, the recipe's
own verifier step (``edgekd.recipes.custom_wakeword``: the clips and the windows of ``mining.wav`` at which the
bundle's gates ask the verifier) trains a head with that seed into ``RUN/verifier-seeds/seed<N>/verifier.pt``; it
replaces the verifier of a copy of the bundle there (same student, gates and ``every``), and the copy is measured as it
runs on the real dev streams of ``bench/realdev_wakeword.py`` (measurement only): FRR at 0.5 / 1 / 2 / 5 FA/h against
the real negatives (``real``) and against them with the run's synthesized test speech (``real_and_synthesized``, the
issue's yardstick). The recipe's seed is ``seed 0``. Prints each seed and the mean and std of every point; writes
``bench/results/verifier_seeds_<label>.json``. ``--heads K``: each seed's verifier is the recipe's ensemble of K heads
(``--verifier-heads``: seeds N .. N+K-1 added to the recipe's, their mean logit; ``RUN/verifier-seeds/heads<K>-seed<N>/``),
so ``--seeds 0 --heads 3`` is the ensemble of the three heads ``--seeds 0 1 2`` measures one by one. About 5 min per
seed on 2 cores. When ``../shared/realdev`` is absent
it says so and exits 0 before training anything.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realdev_wakeword import DEFAULT_REALDEV  # noqa: E402
from realdev_wakeword_seeds import _recipe, dev_streams, yardstick_row, yardstick_summary  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def seed_bundle(run: Path, r: Any, seed: int, block: dict[str, Any], kd: Callable[[], Any], heads: int = 1) -> Path:
    """``RUN/verifier-seeds/seed<N>/bundle``: the run's bundle with a verifier head of training seed ``training_seed(r) + seed``
    behind the same verifier ``block`` (gates, every, max_calls, hold, peak_power, lookback_ms) and trained on the same windows (the report's window
    gates); ``kd()`` gives the run's clips and views (only the head's seed changes), asked only when a head is trained."""
    from edgekd.export.verifier import attach_verifier
    from edgekd.recipes.custom_wakeword import _verifier_head, training_seed, window_gate

    out = run / "verifier-seeds" / (f"seed{seed}" if heads == 1 else f"heads{heads}-seed{seed}")
    bundle = out / "bundle"
    if (bundle / "manifest.json").is_file():
        return bundle
    out.mkdir(parents=True, exist_ok=True)
    rs = replace(r, train_seed=training_seed(r) + seed, verifier_heads=heads)
    chosen = json.loads((run / "report.json").read_text()).get("verifier", {}).get("gates", {})
    gates = {k: {"gate": g, "window_gate": window_gate(chosen.get(k, {"gate": g}))} for k, g in block["gates"].items()}
    head = _verifier_head(out, kd(), run / "teacher.pt", rs, run / "cache", print, run / "bundle", gates, run / "data")
    partial = out / ".bundle.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(run / "bundle", partial)
    attach_verifier(partial, head, block["gates"], every=int(block.get("every", 1)), max_calls=block.get("max_calls"),
                    hold=int(block.get("hold", 0)), peak_power=float(block.get("peak_power", 0.0)),
                    lookback_ms=int(block.get("lookback_ms", 0)), head=str(head), seed=training_seed(rs),
                    heads=heads, made_by="bench/verifier_seeds.py")
    partial.rename(bundle)
    return bundle


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished `edgekd train wakeword --phrase` folder with a two-stage bundle")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="added to the recipe's seed (0: the recipe's own)")
    ap.add_argument("--heads", type=int, default=1, help="heads per verifier (an ensemble of consecutive seeds; 1: one head)")
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "realdev_wakeword", help="where the real negatives WAV is kept")
    ap.add_argument("--json", type=Path, default=None, help="default: bench/results/verifier_seeds_<label>.json")
    args = ap.parse_args(argv)
    if args.heads < 1:
        ap.error("--heads must be >= 1")

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json

    manifest = args.run / "bundle" / "manifest.json"
    if not manifest.is_file() or not (args.run / "report.json").is_file():
        print(f"error: {args.run}: no bundle/manifest.json or report.json; give a finished `edgekd train wakeword --phrase ... --out RUN` "
              "folder", file=sys.stderr)
        return 2
    block = json.loads(manifest.read_text()).get("verifier")
    if not block:
        print(f"error: {args.run}/bundle has no verifier (made with --verifier-budget 0?): nothing to draw again", file=sys.stderr)
        return 2
    r = _recipe(args.run)
    label = r.phrases[0].replace(" ", "_")
    streams = dev_streams(args.realdev, args.work, args.run, label)
    if streams is None:
        return 0
    dev, real, synth = streams
    from edgekd.recipes.custom_wakeword import _kws_data

    kd = functools.cache(lambda: _kws_data(args.run / "data" / "clips", r, args.run / "cache"))  # loaded once, for every seed
    rows = []
    for seed in args.seeds:
        bundle = seed_bundle(args.run, r, seed, block, kd, args.heads)
        rows.append({"seed": seed, "heads": args.heads, "bundle": str(bundle),
                     **yardstick_row(bundle, label, dev, real, synth, f"seed {seed}" + (f", {args.heads} heads" if args.heads > 1 else ""))})
    summary = yardstick_summary(rows)
    out = args.json or REPO / "bench" / "results" / f"verifier_seeds_{label}.json"
    command = " ".join(["python bench/verifier_seeds.py", *(sys.argv[1:] if argv is None else argv)])
    write_json(out, {"what": "a two-stage bundle's verifier head trained again with other seeds (the recipe's verifier step: clips + "
                             "gate-open windows of mining.wav; same student and gates), each measured as it runs on real dev speakers",
                     "command": command, "date": datetime.date.today().isoformat(), "run": str(args.run), "gates": block["gates"],
                     "rows": rows, "summary": summary, "machine": machine_facts()})
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
