"""How a wake-word teacher head's training length and draw carry to real voices.

    python bench/teacher_heads.py runs/ww-view_glass-pw2000 --epochs 2 3 5 8 20 --seeds 0 1 2 3 4

RUN is a finished ``edgekd train wakeword --phrase`` folder. On its material (the recipe's teacher material: its
clips without the mined windows, which the recipe's teacher never sees; the same augmented views and speech-embedding
features, read from the run's caches), the speech-embedding teacher head is trained again for each number of epochs
and seed (main head only, no cross-fitting heads: those label nothing here; ``RUN/teacher-heads/``, reused), and each
head is scored on the real-voice yardstick of ``bench/realdev_wakeword.py``: FRR at 0.5 / 1 / 2 / 5 FA/h of the real
negatives alone and with the run's synthesized test speech. The backbone's frames of every real stream are computed
once (about an hour on one core) and kept under ``--work``/teacher_frames, so each head then costs seconds. Prints
the mean and std over the seeds for each number of epochs; writes JSON (default
``bench/results/teacher_heads_<phrase>.json``). Measurement only: nothing trains on the real recordings.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realdev_wakeword import DEFAULT_REALDEV, evaluate_teacher, real_negatives  # noqa: E402
from realdev_wakeword_seeds import POINTS, _recipe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MINED = "_mined_"


def teacher_material(run: Path) -> tuple[Any, Any, Any, int]:
    """The run's recipe, its labelled sets, the training set as speech-embedding features without mined clips, and how
    many rows (views of mined clips) were left out."""
    from edgekd.recipes.custom_wakeword import _kws_data
    from edgekd.train.features import FeatureSet
    from edgekd.train.teachers.embedding_teacher import embedding_inputs

    r = _recipe(run)
    kd = _kws_data(run / "data" / "clips", r, run / "cache")
    e = embedding_inputs(kd.train, cache_dir=run / "cache")
    keep = np.array([not e.files[c].startswith(MINED + "/") for c in e.clip], dtype=bool)
    train = FeatureSet(e.x[keep], e.y[keep], e.clip[keep], e.labels, f"{e.key}-no{MINED}", e.files, e.spec)
    return r, kd, train, int((~keep).sum())


def train_head(run: Path, r: Any, kd: Any, train: Any, epochs: int, seed: int) -> Path:
    from edgekd.train.config import TrainConfig
    from edgekd.train.teachers.embedding_teacher import train_embedding_teacher

    path = run / "teacher-heads" / f"ep{epochs}-s{seed}.pt"
    if not path.is_file():
        cfg = TrainConfig(arch="speech-embedding", epochs=epochs, seed=seed, threads=1, alpha=0.0, label_smoothing=0.1)
        train_embedding_teacher(train, kd.validation, kd.test, path, cfg, folds=0, cache_dir=run / "cache", progress=False,
                                provenance={"bench": "bench/teacher_heads.py", "phrases": list(r.phrases)})
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished `edgekd train wakeword --phrase` folder (one phrase)")
    ap.add_argument("--epochs", type=int, nargs="+", default=[2, 3, 5, 8, 20])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "realdev_wakeword",
                    help="where the real negatives WAV and the backbone frames of every stream are kept")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json

    if not (args.run / "report.json").is_file():
        print(f"error: {args.run}: no report.json; give a finished `edgekd train wakeword --phrase` folder", file=sys.stderr)
        return 2
    if min(args.epochs) < 1:
        print("error: --epochs must be >= 1", file=sys.stderr)
        return 2
    dev = args.realdev / "wakeword_dev"
    if not dev.is_dir():
        print(f"notice: {dev} is absent: no real-voice numbers (measurement only; nothing else needs it)")
        return 0
    r, kd, train, dropped = teacher_material(args.run)
    if len(r.phrases) != 1:
        print("error: one phrase per run here (the real dev phrases)", file=sys.stderr)
        return 2
    label = r.phrases[0].replace(" ", "_")
    if not (dev / label).is_dir():
        print(f"error: no real recordings of {r.phrases[0]!r} under {dev}", file=sys.stderr)
        return 2
    real = real_negatives(args.realdev, args.work / "real_negatives.wav")
    synth = [p for p in [args.run / "data" / "eval" / "test" / "negatives.wav"] if p.is_file()]
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for epochs in args.epochs:
        got = []
        for seed in args.seeds:
            head = train_head(args.run, r, kd, train, epochs, seed)
            res = evaluate_teacher(head, label, dev / label, dev / f"{label}.tsv", real, synth, None, args.work / "teacher_frames")
            row = {"epochs": epochs, "seed": seed, "teacher": str(head), **{y: {k: res[y][k] for k in POINTS} for y in res}}
            rows.append(row)
            got.append(row)
        summary[str(epochs)] = {}
        for y in got[0]:
            if y in ("epochs", "seed", "teacher"):
                continue
            vals = {k: [g[y][k] for g in got] for k in POINTS}
            summary[str(epochs)][y] = {k: {"mean": float(np.mean(v)) if None not in v else None, "std": float(np.std(v)) if None not in v else None,
                                           "values": v} for k, v in vals.items()}
            at2 = vals["frr_at_2_fa_per_hour"]
            text = "-" if None in at2 else f"{100 * np.mean(at2):.1f} +- {100 * np.std(at2):.1f}%"
            print(f"{epochs:3d} epochs, {y}: FRR at 2 FA/h {text} ({', '.join('-' if v is None else f'{100 * v:.1f}' for v in at2)})",
                  flush=True)
    out = args.json or REPO / "bench" / "results" / f"teacher_heads_{label}.json"
    command = " ".join(["python bench/teacher_heads.py", *(sys.argv[1:] if argv is None else [str(a) for a in argv])])
    write_json(out, {"what": "speech-embedding teacher heads trained again on a wake-word run's teacher material for each number of epochs "
                             "and seed (main head, no cross-fitting), scored on real dev speakers (../shared/realdev/wakeword_dev): "
                             "real negatives alone, and with the run's synthesized test speech",
                     "command": command, "date": datetime.date.today().isoformat(), "run": str(args.run),
                     "teacher_rows": len(train), "mined_rows_dropped": dropped,
                     "summary": summary, "heads": rows, "machine": machine_facts()})
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
