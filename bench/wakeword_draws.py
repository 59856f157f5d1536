"""How much of a two-stage wake-word bundle's real-voice number is its training draw: the whole recipe trained again.

    python bench/wakeword_draws.py runs/ww-view_glass --train-seeds 1 2

RUN is a finished ``edgekd train wakeword --phrase`` folder. For each seed N, ``RUN/draws/seed<N>/`` gets RUN's material
(hard links of ``data/`` and ``cache/``, without ``data/clips/_mined_``: a draw mines with its own first student) and
the recipe of ``RUN/report.json`` runs there with ``train_seed`` N (``edgekd.recipes.custom_wakeword``): the teacher
head, both students and their mining, int8, the gates, the verifier head and the threshold are drawn again; the
synthesized material, views aside, stays RUN's. Each bundle, RUN's own included (its recipe's training seed), is then
measured as it runs on the real dev streams of ``bench/realdev_wakeword.py`` (measurement only): FRR at 0.5 / 1 / 2 /
5 FA/h against the real negatives (``real``) and against them with RUN's synthesized test speech
(``real_and_synthesized``, the issue's yardstick), and the mean and std over the draws. A draw already made is reused.
Writes ``bench/results/realdev_wakeword_draws_<label>.json``. About 1-1.5 h per draw on 2 cores (``--threads``). When
``../shared/realdev`` lacks the phrase it says so and exits 0 before training anything.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realdev_wakeword import DEFAULT_REALDEV  # noqa: E402
from realdev_wakeword_seeds import _recipe, dev_streams, yardstick_row, yardstick_summary  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MINED = "_mined_"


def link_material(run: Path, out: Path) -> None:
    """``out/data`` and ``out/cache`` as hard links of RUN's (files are never written in place by the recipe), leaving out
    the mined windows of RUN's first student. Made under a temporary name, then renamed; kept when already there."""
    for name in ("data", "cache"):
        src, dst = run / name, out / name
        if dst.exists() or not src.is_dir():
            continue
        partial = out / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(src, partial, copy_function=os.link,
                        ignore=(lambda d, names, clips=src / "clips": [MINED] if Path(d) == clips else []) if name == "data" else None)
        partial.rename(dst)


def draw(run: Path, r: Any, seed: int, threads: int | None) -> Path:
    """RUN's recipe with ``train_seed`` ``seed`` in ``RUN/draws/seed<N>``; returns its bundle (reused when finished)."""
    from edgekd.recipes.custom_wakeword import run_phrase_wakeword

    out = run / "draws" / f"seed{seed}"
    if (out / "report.json").is_file() and (out / "bundle" / "manifest.json").is_file():
        return out / "bundle"
    out.mkdir(parents=True, exist_ok=True)
    link_material(run, out)
    rs = replace(r, train_seed=seed, **({} if threads is None else {"threads": threads, "workers": threads}))
    run_phrase_wakeword(out, rs, say=lambda m: print(m, flush=True))
    return out / "bundle"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished `edgekd train wakeword --phrase` folder")
    ap.add_argument("--train-seeds", type=int, nargs="+", required=True, help="training seeds of the new draws (RUN's own is measured too)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (and workers) of the draws (default: RUN's)")
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "realdev_wakeword", help="where the real negatives WAV is kept")
    ap.add_argument("--json", type=Path, default=None, help="default: bench/results/realdev_wakeword_draws_<label>.json")
    args = ap.parse_args(argv)

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.recipes.custom_wakeword import training_seed

    if not (args.run / "bundle" / "manifest.json").is_file() or not (args.run / "report.json").is_file():
        print(f"error: {args.run}: no bundle/manifest.json or report.json; give a finished `edgekd train wakeword --phrase ... --out RUN` "
              "folder", file=sys.stderr)
        return 2
    if min(args.train_seeds) < 0 or (args.threads is not None and args.threads < 1):
        print("error: --train-seeds must be >= 0 and --threads >= 1", file=sys.stderr)
        return 2
    r = _recipe(args.run)
    own = training_seed(r)
    if own in args.train_seeds:
        print(f"error: --train-seeds {own} is {args.run}'s own draw (measured anyway); give other seeds", file=sys.stderr)
        return 2
    label = r.phrases[0].replace(" ", "_")
    streams = dev_streams(args.realdev, args.work, args.run, label)
    if streams is None:
        return 0
    dev, real, synth = streams
    rows = []
    for seed in [own, *args.train_seeds]:
        bundle = args.run / "bundle" if seed == own else draw(args.run, r, seed, args.threads)
        rows.append({"train_seed": seed, "bundle": str(bundle), **yardstick_row(bundle, label, dev, real, synth, f"train seed {seed}")})
    summary = yardstick_summary(rows)
    out = args.json or REPO / "bench" / "results" / f"realdev_wakeword_draws_{label}.json"
    command = " ".join(["python bench/wakeword_draws.py", *(sys.argv[1:] if argv is None else argv)])
    write_json(out, {"what": "the phrase recipe's training (teacher head, students, mining, int8, gates, verifier, threshold) drawn again "
                             "on the same synthesized material with other training seeds, each bundle measured as it runs on real dev "
                             "speakers", "command": command, "date": datetime.date.today().isoformat(), "run": str(args.run),
                     "recipe": {k: v for k, v in asdict(r).items() if k not in ("threads", "workers")},
                     "rows": rows, "summary": summary, "machine": machine_facts()})
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
