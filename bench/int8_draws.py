"""int8 of a wake-word run's final float student, made again another way: QAT fine-tuning with another seed, with or
without the transfer windows, or no fine-tuning at all; scored on real voices like ``bench/realdev_wakeword.py``.

    python bench/int8_draws.py runs/ww-smart_mirror-xfit --qat-epochs 2 --seed 1
    python bench/int8_draws.py runs/ww-smart_mirror-xfit --qat-epochs 2 --seed 0 --transfer
    python bench/int8_draws.py runs/ww-smart_mirror-xfit --qat-epochs 0 --transfer

RUN is a finished ``edgekd train wakeword --phrase`` folder (one phrase). The int8 checkpoint and its streaming int8
bundle go to ``RUN/int8-draws/<tag>``; the bundle is scored as the yardstick does (real dev voices, measurement only,
against the real negatives and with the run's synthesized test speech). Prints FRR at 0.5 / 1 / 2 / 5 FA/h and writes
JSON (default ``bench/results/int8_draws_<label>_<tag>.json``). A few minutes per draw on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realdev_wakeword import DEFAULT_REALDEV, evaluate, real_negatives  # noqa: E402
from realdev_wakeword_seeds import POINTS, _line, _recipe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished `edgekd train wakeword --phrase` folder")
    ap.add_argument("--qat-epochs", type=int, default=0, help="QAT fine-tuning epochs (0: none, ranges observed over the training rows)")
    ap.add_argument("--seed", type=int, default=0, help="QAT seed (calibration rows and batch order)")
    ap.add_argument("--lr", type=float, default=5e-4, help="QAT peak learning rate (one-cycle)")
    ap.add_argument("--transfer", action="store_true", help="also the run's transfer windows (fine-tuning and ranges)")
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.qat_epochs < 0:
        raise SystemExit("error: --qat-epochs must be >= 0")

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.recipes.custom_wakeword import _export, _kws_data, golden_clip, phrase_labels
    from edgekd.train.pipeline import train_qat

    run = args.run
    r = _recipe(run)
    if len(r.phrases) != 1:
        raise SystemExit(f"error: {run} is a command set ({', '.join(r.phrases)}); this bench takes one phrase")
    label = phrase_labels(r.phrases)[0]
    tag = f"qat{args.qat_epochs}-seed{args.seed}" + (f"-lr{args.lr:g}" if args.qat_epochs and args.lr != 5e-4 else "") + ("-transfer" if args.transfer else "")
    ckpt = run / "int8-draws" / f"{tag}.pt"
    ckpt.parent.mkdir(exist_ok=True)
    student = run / ("student-mined.pt" if (run / "student-mined.pt").is_file() else "student.pt")
    if not ckpt.is_file():
        train_qat(_kws_data(run / "data" / "clips", r, run / "cache"), student, ckpt, teacher=[str(run / "teacher.pt")],
                  epochs=args.qat_epochs, lr=args.lr, seed=args.seed, threads=r.threads, cache_dir=run / "cache",
                  transfer=run / "data" / "transfer" if args.transfer else None)
    bundle = run / "int8-draws" / f"{tag}-bundle"
    _export(ckpt, bundle, r, golden_clip(run / "data", label), int8=True)
    dev = args.realdev / "wakeword_dev"
    row: dict[str, object] = {"student": str(student), "checkpoint": str(ckpt), "bundle": str(bundle)}
    if (dev / label).is_dir():
        real = real_negatives(args.realdev, REPO / "runs" / "realdev_wakeword" / "real_negatives.wav")
        for key, negatives in (("real", [real]), ("real_and_synthesized", [real, run / "data" / "eval" / "test" / "negatives.wav"])):
            res = evaluate(bundle, label, dev / label, dev / f"{label}.tsv", negatives)
            row[key] = {p: res[p] for p in POINTS}
            print(_line(f"{tag} {key}", row[key]), flush=True)
    else:
        print(f"notice: {dev / label} is absent: the bundle is made, nothing is scored (real voices are measurement only)")
    out = args.json or REPO / "bench" / "results" / f"int8_draws_{label}_{tag}.json"
    command = " ".join(["python bench/int8_draws.py", *(sys.argv[1:] if argv is None else [str(a) for a in argv])])
    write_json(out, {"what": f"int8 of {student} made again ({tag}); FRR of its streaming int8 bundle on real dev voices",
                     "command": command, "date": datetime.date.today().isoformat(), "label": label, "qat_epochs": args.qat_epochs,
                     "seed": args.seed, "lr": args.lr, "transfer": args.transfer, **row, "machine": machine_facts()})
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
