"""Does distillation earn its keep? Each student with each teacher and with none, same data, same steps, several seeds.

    python bench/kd_study.py --data runs/vb/data --cache-dir runs/vb/cache \\
        --teacher cnn=runs/vb/teacher.pt --teacher se=runs/vb/se-teacher.pt \\
        --teacher se+cnn=runs/vb/se-teacher.pt,runs/vb/teacher.pt --feature-kd se+cnn=1.0

A teacher is NAME=CKPT[,CKPT...] (several checkpoints: the mean of their logits), or NAME=none for another cell of
hard labels only; ``none`` (hard labels only) is always a cell. ``--feature-kd NAME=W`` adds feature distillation onto
the speech embedding to that cell; ``--train-option NAME:KEY=VALUE`` sets a training option of that cell's students
(``freq_warp``, ``eq_db`` or ``ema`` of ``TrainConfig``), e.g.

    --teacher ens=se.pt,teacher.pt --teacher ens-aug=se.pt,teacher.pt --train-option ens-aug:freq_warp=0.1

Every run
reports synthesized-test accuracy (held-out voices) and, when ``../shared/realdev`` is there, real-dev accuracy
(real Speech Commands speakers, measurement only), plus each teacher's own accuracy on both; mean +- std over seeds go
to the JSON file with machine facts, and a markdown table is printed. Finished runs of the same study are kept (resume).
Without --teacher it runs `edgekd demo`'s data and teacher steps first (runs/demo) and studies that CNN teacher.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REALDEV = REPO.parent / "shared" / "realdev" / "gsc_v2_test_dev"


def _teachers(specs: list[str]) -> dict[str, list[str]]:
    out = {}
    for s in specs:
        name, _, paths = s.partition("=")
        if not name or not paths or name == "none":
            raise SystemExit(f"--teacher {s!r}: give NAME=CKPT[,CKPT...] or NAME=none (NAME not none)")
        out[name] = [] if paths == "none" else paths.split(",")
    return out


def _train_options(specs: list[str], cells: list[str]) -> dict[str, dict[str, float]]:
    """``NAME:KEY=VALUE`` strings as {cell: {key: value}}; a cell must be a teacher name, a key one of ``TrainConfig``'s
    ``OPTION_BOUNDS``."""
    from edgekd.train.config import OPTION_BOUNDS

    out: dict[str, dict[str, float]] = {}
    for s in specs:
        cell, _, kv = s.partition(":")
        key, _, value = kv.partition("=")
        if cell not in cells or key not in OPTION_BOUNDS:
            raise SystemExit(f"--train-option {s!r}: give NAME:KEY=VALUE with NAME one of {cells} and KEY one of {sorted(OPTION_BOUNDS)}")
        try:
            v = float(value)
        except ValueError:
            v = float("nan")
        if not OPTION_BOUNDS[key].ok(v):
            raise SystemExit(f"--train-option {s!r}: {key} must be a number in {OPTION_BOUNDS[key]}")
        out.setdefault(cell, {})[key] = v
    return out


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO / "runs/demo/data")
    ap.add_argument("--teacher", action="append", default=[], help="NAME=CKPT[,CKPT...] (repeatable; default: cnn=runs/demo/teacher.pt)")
    ap.add_argument("--feature-kd", action="append", default=[], help="NAME=WEIGHT: feature distillation in that teacher's cell")
    ap.add_argument("--train-option", action="append", default=[],
                    help="NAME:KEY=VALUE: a training option of that teacher's cell, KEY one of freq_warp, eq_db, ema")
    ap.add_argument("--cache-dir", type=Path, default=REPO / "runs/demo/cache")
    ap.add_argument("--work", type=Path, default=REPO / "runs/kd-study")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/kd_study.json")
    ap.add_argument("--students", nargs="+", default=["dscnn", "bcresnet1"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV, help="real Speech Commands speakers (measurement only)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--jobs", type=int, default=2, help="training runs in parallel")
    return ap.parse_args()


def _prepare_teachers(args: argparse.Namespace, teachers: dict[str, list[str]], fkd: dict[str, float], realdev: Path | None) -> list[dict]:  # type: ignore[type-arg]
    """Fill every teacher-logit (and embedding) cache once, before the workers start; score each teacher."""
    from edgekd.runtime.frontend import FrontendParams
    from edgekd.train.logit_cache import teacher_logits
    from edgekd.train.pipeline import load_kws_data

    if not args.teacher and not (args.data / "synth_meta.json").is_file():
        from edgekd.recipes.demo import DemoConfig, run_demo

        print("no data/teacher yet: running the demo first", flush=True)
        run_demo(REPO / "runs/demo", DemoConfig())
    kd = load_kws_data(args.data, views=args.views, cache_dir=args.cache_dir, rooms=True)
    teacher_rows = []
    scores: dict[tuple[str, ...], dict] = {}  # cells of the same checkpoints (other options) are scored once
    for name, paths in teachers.items():
        if not paths:
            continue
        if tuple(paths) not in scores:
            for p in paths:
                teacher_logits(kd.train, FrontendParams().to_dict(), teacher=p, cache_root=args.cache_dir, threads=2)
            scores[tuple(paths)] = _teacher_scores(paths, kd.test, realdev, args.cache_dir)
        teacher_rows.append({"teacher": name, "checkpoints": paths, **scores[tuple(paths)]})
        print(json.dumps(teacher_rows[-1]), flush=True)
    if any(fkd.values()):
        from edgekd.train.pipeline import embedding_targets

        embedding_targets(kd.train, cache_dir=args.cache_dir)
    return teacher_rows


def _finished_runs(args: argparse.Namespace, teachers: dict[str, list[str]], fkd: dict[str, float], opts: dict[str, dict[str, float]],
                   cells: list[str]) -> list[dict]:  # type: ignore[type-arg]
    """Resume: the finished runs of the same study (same epochs, teachers, feature-KD weights and options) in ``args.out``."""
    if not args.out.is_file():
        return []
    prev = json.loads(args.out.read_text())
    if (prev.get("epochs") == args.epochs and prev.get("teachers") == teachers and prev.get("feature_kd") == fkd
            and prev.get("train_options", {}) == opts):
        return [r for r in prev.get("runs", []) if r["teacher"] in cells]
    return []


def main() -> None:
    args = _args()
    teachers = _teachers(args.teacher) if args.teacher else {"cnn": [str(REPO / "runs/demo/teacher.pt")]}
    fkd = {k: float(v) for k, _, v in (s.partition("=") for s in args.feature_kd)}
    opts = _train_options(args.train_option, list(teachers))

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.core.procutil import die_with_parent

    realdev = args.realdev if args.realdev.is_dir() else None
    teacher_rows = _prepare_teachers(args, teachers, fkd, realdev)
    cells = ["none", *teachers]
    runs = _finished_runs(args, teachers, fkd, opts, cells)
    done = {(r["student"], r["teacher"], r["seed"]) for r in runs}
    tasks = [(student, cell, seed) for student in args.students for seed in args.seeds for cell in cells if (student, cell, seed) not in done]
    t0 = time.time()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx, initializer=die_with_parent) as pool:
        futs = [pool.submit(_one_run, vars(args), student, cell, teachers.get(cell, []), fkd.get(cell, 0.0), opts.get(cell, {}), seed,
                            realdev) for student, cell, seed in tasks]
        for f in as_completed(futs):
            runs.append(f.result())
            print(json.dumps(runs[-1]), flush=True)
            write_json(args.out, _summary(args, teachers, fkd, opts, teacher_rows, runs, machine_facts()))
    res = _summary(args, teachers, fkd, opts, teacher_rows, runs, machine_facts())
    write_json(args.out, res)
    print(res["table_md"])
    print(f"total {time.time() - t0:.0f} s")


@functools.cache
def _realdev_logits(path: str, realdev: Path) -> tuple:  # (logits, labels index) of one checkpoint on real-dev
    from edgekd.train.evaluate import checkpoint_logits

    return checkpoint_logits(Path(path), realdev)


def _teacher_scores(paths: list[str], test, realdev: Path | None, cache_dir: Path) -> dict:  # type: ignore[no-untyped-def]
    """A teacher's (or an ensemble's mean-logit) accuracy on the synthesized test split and on real-dev."""
    from edgekd.train.evaluate import ensemble_accuracy, feature_set_logits

    out = {"test_accuracy": ensemble_accuracy([(feature_set_logits(p, test, cache_dir=cache_dir), test.y) for p in paths], paths)}
    if realdev is not None:
        out["realdev_accuracy"] = ensemble_accuracy([_realdev_logits(p, realdev) for p in paths], paths)
    return out


def _one_run(a: dict, student: str, cell: str, teacher: list[str], feature_kd: float, options: dict[str, float], seed: int,
             realdev: Path | None) -> dict:
    """One training run in a worker process (1 torch thread each: two workers beat one 2-thread run here)."""
    import numpy as np

    from edgekd.train.config import TrainConfig
    from edgekd.train.pipeline import load_kws_data, train_kws

    kd = load_kws_data(a["data"], views=a["views"], cache_dir=a["cache_dir"], progress=False, rooms=True)
    ck = Path(a["work"]) / f"{student}-{cell}-s{seed}.pt"
    cfg = TrainConfig(arch=student, epochs=a["epochs"], seed=seed, threads=a["threads"], alpha=0.7 if teacher else 0.0,
                      feature_kd=feature_kd, **options)
    c = train_kws(kd, ck, cfg, teacher=teacher or None, cache_dir=a["cache_dir"], progress=False)
    row = {"student": student, "teacher": cell, "feature_kd": feature_kd, **options, "seed": seed, "epochs": a["epochs"],
           "steps": c.metrics["train_steps"], "test_accuracy": c.metrics["test_accuracy_torch"], "val_accuracy": c.metrics["val_accuracy"],
           "params": c.metrics["params"], "train_seconds": c.metrics["train_seconds"]}
    if realdev is not None:
        from edgekd.train.evaluate import checkpoint_logits

        logits, y = checkpoint_logits(ck, realdev)
        row["realdev_accuracy"] = float(np.mean(logits.argmax(-1) == y))
    return row


def _ms(v: list[float]) -> str:
    return f"{statistics.mean(v):.2f} +- {statistics.stdev(v) if len(v) > 1 else 0.0:.2f}" if v else "-"


def _label(cell: str, fkd: dict, opts: dict) -> str:
    """A cell's name in the table: its teacher name, feature-KD weight and training options."""
    names = {"freq_warp": "warp", "eq_db": "EQ dB", "ema": "EMA"}
    return cell + (f" + feature KD {fkd[cell]:g}" if fkd.get(cell) else "") + "".join(f" + {names[k]} {v:g}" for k, v in opts.get(cell, {}).items())


def _summary(args: argparse.Namespace, teachers: dict, fkd: dict, opts: dict, teacher_rows: list[dict], runs: list[dict], facts: dict) -> dict:
    cells: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        cells.setdefault((r["student"], r["teacher"]), []).append(r)
    order = ["none", *teachers]
    rows = ["| student | teacher | n | synth test acc % | real-dev acc % | real-dev gain vs none (points) |", "|---|---|---|---|---|---|"]
    table = []
    for student in sorted({k[0] for k in cells}):
        base = [100 * r["realdev_accuracy"] for r in cells.get((student, "none"), []) if "realdev_accuracy" in r]
        for cell in order:
            rs = cells.get((student, cell), [])
            if not rs:
                continue
            test = [100 * r["test_accuracy"] for r in rs]
            real = [100 * r["realdev_accuracy"] for r in rs if "realdev_accuracy" in r]
            gain = statistics.mean(real) - statistics.mean(base) if real and base and cell != "none" else None
            rows.append(f"| {student} | {_label(cell, fkd, opts)} | {len(rs)} | {_ms(test)} | {_ms(real)} | {'' if gain is None else f'{gain:+.2f}'} |")
            table.append({"student": student, "teacher": cell, "feature_kd": fkd.get(cell, 0.0), **opts.get(cell, {}), "test": test, "realdev": real,
                          "realdev_gain_points": gain})
    same: dict[tuple[str, ...], list[dict]] = {}  # cells of the same checkpoints (other options) share one row
    for t in teacher_rows:  # (a cell of hard labels has none)
        same.setdefault(tuple(t["checkpoints"]), []).append(t)
    for ts in same.values():
        t = ts[0]
        rd = f"{100 * t['realdev_accuracy']:.2f}" if "realdev_accuracy" in t else "-"
        rows.append(f"| (the teacher itself) | {', '.join(x['teacher'] for x in ts)} | 1 | {100 * t['test_accuracy']:.2f} | {rd} | |")
    return {"study": "each student with each teacher and with none: same data (augmented views, rooms), same steps, KD T = 3, "
                     "alpha = 0.7; synth test = held-out voices of every engine; real-dev = real Speech Commands speakers "
                     "(measurement only)", "command": "python bench/kd_study.py " + " ".join(sys.argv[1:]),
            "epochs": args.epochs, "views": args.views, "jobs": args.jobs, "threads_per_job": args.threads,
            "teachers": teachers, "feature_kd": fkd, "train_options": opts, "data": str(args.data), "teacher_scores": teacher_rows,
            "machine": facts, "runs": runs, "table": table, "table_md": "\n".join(rows)}


if __name__ == "__main__":
    main()
