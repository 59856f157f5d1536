"""Does distillation earn its keep? Each student with and without the teacher, several seeds, full data and a subset.

    python bench/kd_study.py --data runs/demo/data --teacher runs/demo/teacher.pt --out bench/results/kd_study.json

Without --data/--teacher it runs `edgekd demo`'s data and teacher steps first (runs/demo). Writes mean +- std
of test accuracy (unseen voices) per cell to the JSON file, with machine facts, and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO / "runs/demo/data")
    ap.add_argument("--teacher", type=Path, default=REPO / "runs/demo/teacher.pt")
    ap.add_argument("--cache-dir", type=Path, default=REPO / "runs/demo/cache")
    ap.add_argument("--work", type=Path, default=REPO / "runs/kd-study")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/kd_study.json")
    ap.add_argument("--students", nargs="+", default=["dscnn", "bcresnet1"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--subsets", type=float, nargs="+", default=[1.0, 0.1])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--jobs", type=int, default=2, help="training runs in parallel")
    args = ap.parse_args()

    from edgekd.bench.machine import machine_facts
    from edgekd.cli.common import write_json
    from edgekd.train.pipeline import load_kws_data

    if not (args.data / "synth_meta.json").is_file() or not args.teacher.is_file():
        from edgekd.demo import DemoConfig, run_demo

        print("no data/teacher yet: running the demo first", flush=True)
        run_demo(REPO / "runs/demo", DemoConfig())
    kd = load_kws_data(args.data, views=args.views, cache_dir=args.cache_dir)
    from edgekd.runtime.frontend import FrontendParams
    from edgekd.train.logit_cache import teacher_logits

    # fill the teacher-logit cache once, before the workers start
    teacher_logits(kd.train, FrontendParams().to_dict(), teacher=args.teacher, cache_root=args.cache_dir, threads=args.threads)
    del kd
    runs = []
    if args.out.is_file():  # resume: keep finished runs of the same study (same epochs, steps matched on subsets)
        prev = json.loads(args.out.read_text())
        if prev.get("epochs") == args.epochs:
            runs = [r for r in prev.get("runs", []) if r.get("epochs") == max(1, round(args.epochs / r["subset"]))]
    done = {(r["student"], r["teacher"], r["subset"], r["seed"]) for r in runs}
    tasks = [(student, use_teacher, subset, seed) for subset in args.subsets for student in args.students
             for seed in args.seeds for use_teacher in (True, False) if (student, use_teacher, subset, seed) not in done]
    t0 = time.time()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        futs = [pool.submit(_one_run, vars(args), *t) for t in tasks]
        for f in as_completed(futs):
            runs.append(f.result())
            print(json.dumps(runs[-1]), flush=True)
            write_json(args.out, _summary(args, runs, machine_facts()))
    res = _summary(args, runs, machine_facts())
    write_json(args.out, res)
    print(res["table_md"])
    print(f"total {time.time() - t0:.0f} s")


def _one_run(a: dict, student: str, use_teacher: bool, subset: float, seed: int) -> dict:
    """One training run in a worker process (1 torch thread each: two workers beat one 2-thread run here)."""
    from edgekd.train.config import TrainConfig
    from edgekd.train.pipeline import load_kws_data, train_kws

    kd = load_kws_data(a["data"], views=a["views"], cache_dir=a["cache_dir"], progress=False)
    ck = Path(a["work"]) / f"{student}-{'kd' if use_teacher else 'ce'}-s{seed}-sub{subset}.pt"
    # the same number of optimizer steps on a subset as on the full data (more epochs over fewer clips)
    epochs = max(1, round(a["epochs"] / subset))
    cfg = TrainConfig(arch=student, epochs=epochs, seed=seed, threads=a["threads"], alpha=0.7 if use_teacher else 0.0)
    c = train_kws(kd, ck, cfg, teacher=a["teacher"] if use_teacher else None, subset=subset, cache_dir=a["cache_dir"], progress=False)
    return {"student": student, "teacher": use_teacher, "subset": subset, "seed": seed, "epochs": epochs,
            "test_accuracy": c.metrics["test_accuracy_torch"], "val_accuracy": c.metrics["val_accuracy"],
            "params": c.metrics["params"], "train_seconds": c.metrics["train_seconds"]}


def _summary(args: argparse.Namespace, runs: list[dict], facts: dict) -> dict:
    cells = {}
    for r in runs:
        cells.setdefault((r["student"], r["subset"], r["teacher"]), []).append(100 * r["test_accuracy"])
    rows = ["| student | training data | no teacher (acc %) | distilled (acc %) | KD gain (points) |", "|---|---|---|---|---|"]
    table = []
    for (student, subset) in sorted({(k[0], k[1]) for k in cells}, key=lambda k: (k[0], -k[1])):
        ce, kd = cells.get((student, subset, False), []), cells.get((student, subset, True), [])

        def ms(v: list[float]) -> str:
            return f"{statistics.mean(v):.2f} +- {statistics.stdev(v) if len(v) > 1 else 0.0:.2f} (n={len(v)})" if v else "-"

        gain = statistics.mean(kd) - statistics.mean(ce) if kd and ce else None
        rows.append(f"| {student} | {int(round(100 * subset))}% | {ms(ce)} | {ms(kd)} | {'' if gain is None else f'{gain:+.2f}'} |")
        table.append({"student": student, "subset": subset, "no_teacher": ce, "distilled": kd, "gain_points": gain})
    return {"study": "KD vs no teacher, test split = unseen espeak-ng voice variants; subsets train for the same number of steps "
                     "(epochs / fraction)", "command": "make kd-study",
            "epochs": args.epochs, "views": args.views, "jobs": args.jobs, "threads_per_job": args.threads,
            "teacher": str(args.teacher), "data": str(args.data),
            "machine": facts, "runs": runs, "table": table, "table_md": "\n".join(rows)}


if __name__ == "__main__":
    main()
