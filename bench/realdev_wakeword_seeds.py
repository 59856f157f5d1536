"""How much of a wake-word number is the training seed: the recipe's final student trained again with other seeds.

    python bench/realdev_wakeword_seeds.py runs/ww-smart_mirror --seeds 0 1 2
    python bench/realdev_wakeword_seeds.py runs/ww-smart_mirror --seeds 0 1 2 --feature-kd 1 --json bench/results/realdev_wakeword_seeds_smart_mirror_fkd.json

RUN is a finished ``edgekd train wakeword --phrase`` folder. For each seed, the student the recipe ships (the one
after false-accept mining) is trained again on the same material, views, teacher and transfer windows with only the
training seed changed (initialisation, batch order, SpecAugment), exported as a float streaming bundle under
``RUN/seeds/`` and scored: FRR at 0.5 / 1 / 2 / 5 FA/h on the recipe's synthesized validation and test material and,
when ``../shared/realdev`` is present, on real voices (the yardstick of ``bench/realdev_wakeword.py``; measurement
only) against the real negatives (``real``) and against them with the run's synthesized test speech
(``real_and_synthesized``, the issue's yardstick). Float bundles: the recipe's int8 keeps the float weights (no
fine-tuning by default since 2026-12-04) and measured 0-3.3 points from them (README); the recipe's own seed with its own settings reuses its student.
Prints each seed and the mean and std of every FRR point; writes JSON (default ``bench/results/realdev_wakeword_seeds_<label>.json``).
``--alpha``, ``--arch``, ``--freq-warp``, ``--eq-db``, ``--ema``, ``--clean-negatives``, ``--views``, ``--pitch-shift``, ``--slow-down``
and ``--transfer`` train the seeds
with another soft-target weight, student, frequency warping, random EQ, weight average, number of augmented views per
clip (the run's own first, the run's teacher labels them all), pitch shift or slowing of the views (new views, labelled by the
run's teacher) or transfer set (a probe of the recipe); ``--phrase-windows N`` adds N
phrase windows of the run's training clips to that transfer set
(``edgekd.data.transfer.with_phrase_windows``, made once as ``<transfer>-phraseN`` beside it).
``--ensemble`` also scores the mean of the seeds' posteriors on real voices: how much of one student's error is its own draw.
About 20 min per seed on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realdev_wakeword import DEFAULT_REALDEV, evaluate, evaluate_mean, real_negatives  # noqa: E402

from edgekd.eval.wakeword import FA_POINTS  # noqa: E402
from edgekd.train.config import OPTION_BOUNDS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# numeric training settings a seed may take instead of the run's own: recipe field (= option), valid when, in words;
# the augmentations' tag in a seed's file name when it differs from the run's
SETTINGS: tuple[tuple[str, Callable[[float], bool], str], ...] = (
    ("feature_kd", lambda v: v >= 0, ">= 0"),
    ("alpha", lambda v: 0.0 <= v <= 1.0, "between 0 and 1"),
    *((name, bound.ok, f"in {bound}") for name, bound in OPTION_BOUNDS.items()),  # freq_warp, eq_db, ema
    ("pitch_shift", lambda v: 0.0 <= v <= 12.0, "in [0, 12] semitones"),
    ("slow_down", lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
    ("clean_negatives", lambda v: v in (0.0, 1.0), "0 or 1"),
)
TAGS = {"freq_warp": "warp", "eq_db": "eq", "ema": "ema", "clean_negatives": "clean"}  # training settings, in the checkpoint's config
DATA_TAGS = {"views": "views", "pitch_shift": "pitch", "slow_down": "slow"}  # settings of the views: the run's own are its recipe's
POINTS = tuple(f"frr_at_{fa:g}_fa_per_hour" for fa in FA_POINTS)  # the keys of edgekd.eval.wakeword.frr_points


def _recipe(run: Path) -> Any:
    from edgekd.recipes.custom_wakeword import PhraseRecipe

    report = run / "report.json"
    if not report.is_file():
        raise SystemExit(f"error: {run}: no report.json; give a finished `edgekd train wakeword --phrase ... --out RUN` folder")
    known = {f.name for f in fields(PhraseRecipe)}
    r = {k: v for k, v in json.loads(report.read_text())["recipe"].items() if k in known}
    r["phrases"] = tuple(r["phrases"])
    r.setdefault("confusable_clips", 0)  # a run made before the option has none
    r.setdefault("gate_views", 0)  # nor field views in its gate's ceiling (2026-12-07)
    r.setdefault("peak_power", 0.0)  # nor the opening's peak in its verified score (2026-12-07)
    r.setdefault("verifier_lookback_ms", 0)  # nor a look-back at an opening's first verifier call (2026-12-08)
    if r.get("engines") is not None:
        r["engines"] = tuple(tuple(e) for e in r["engines"])
    return PhraseRecipe(**r)


def _student(run: Path, r: Any, seed: int, out: Path, transfer: Path, own_data: dict[str, float]) -> tuple[Path, float | None]:
    """The recipe's final student with training seed ``seed`` (``r`` carries the feature-KD and soft-target weights
    to use), distilled on the transfer windows of ``transfer`` by the recipe's own training step."""
    from edgekd.recipes.custom_wakeword import _kws_data
    from edgekd.recipes.custom_wakeword import _student as train_student
    from edgekd.train.checkpoint import Checkpoint

    own = run / ("student-mined.pt" if (run / "student-mined.pt").is_file() else "student.pt")
    made = Checkpoint.load(own)
    if (seed == made.config.get("seed") and r.arch == made.arch and r.feature_kd == float(made.config.get("feature_kd", 0.0))
            and r.alpha == made.config.get("alpha") and all(getattr(r, k) == float(made.config.get(k, 0.0)) for k in TAGS)
            and transfer == run / "data" / "transfer" and all(getattr(r, k) == v for k, v in own_data.items())):
        return own, made.metrics.get("test_accuracy_torch")
    if not out.is_file():  # the views stay the run's (its seed; more views add new ones after them); only the training seed changes
        train_student(out, _kws_data(run / "data" / "clips", r, run / "cache"), run / "teacher.pt", transfer, replace(r, train_seed=seed), run / "cache",
                      print, provenance={"recipe": "bench/realdev_wakeword_seeds.py", "run": str(run)})
    return out, Checkpoint.load(out).metrics.get("test_accuracy_torch")


def _stats(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for p in POINTS:
        v = [row[key][p] for row in rows if row.get(key) and row[key][p] is not None]
        out[p] = {"mean": float(np.mean(v)) if v else None, "std": float(np.std(v)) if v else None,
                  "min": float(np.min(v)) if v else None, "max": float(np.max(v)) if v else None}
    return out


def _line(name: str, r: dict[str, Any]) -> str:
    return f"{name} " + " / ".join("-" if r[p] is None else f"{100 * r[p]:.1f}%" for p in POINTS) + " at " + " / ".join(f"{fa:g}" for fa in FA_POINTS) + " FA/h"


def dev_streams(realdev: Path, work: Path, run: Path, label: str) -> tuple[Path, Path, list[Path]] | None:
    """The dev folder, the real negatives WAV (made once under ``work``) and RUN's synthesized test speech (when there)
    for ``label``; None, said on stdout, when ``realdev`` lacks the phrase."""
    dev = realdev / "wakeword_dev"
    if not (dev / label).is_dir():
        print(f"notice: {dev / label} is absent: no real-voice numbers for {label!r} (measurement only); nothing trained")
        return None
    real = real_negatives(realdev, work / "real_negatives.wav")
    return dev, real, [p for p in [run / "data" / "eval" / "test" / "negatives.wav"] if p.is_file()]


def yardstick_row(bundle: Path, label: str, dev: Path, real: Path, synth: list[Path], name: str) -> dict[str, Any]:
    """FRR points of ``bundle`` on the real dev positives of ``label`` against the real negatives (``real``) and, when
    ``synth`` is given, against them with that synthesized speech (``real_and_synthesized``); prints each as ``name``."""
    row: dict[str, Any] = {}
    for key, negs in (("real", [real]), ("real_and_synthesized", [real, *synth])):
        if key == "real_and_synthesized" and not synth:
            continue
        res = evaluate(bundle, label, dev / label, dev / f"{label}.tsv", negs)
        row[key] = {p: res[p] for p in POINTS}
        print(_line(f"{name} ({key}):", row[key]), flush=True)
    return row


def yardstick_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, std, min and max of every FRR point of ``yardstick_row`` rows over the rows; printed."""
    summary = {key: _stats(rows, key) for key in ("real", "real_and_synthesized")}
    for key, st in summary.items():
        if any(v["mean"] is not None for v in st.values()):
            print(f"{key}: mean " + " / ".join("-" if st[p]["mean"] is None else f"{100 * st[p]['mean']:.1f} +- {100 * st[p]['std']:.1f}%"
                                               for p in POINTS))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished `edgekd train wakeword --phrase` folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    ap.add_argument("--feature-kd", type=float, default=None, help="feature-distillation weight (default: the run's own)")
    ap.add_argument("--arch", default=None, help="student architecture (default: the run's own), e.g. dscnn-stream-128")
    ap.add_argument("--alpha", type=float, default=None, help="weight of the teacher's soft targets on labelled clips (default: the run's own)")
    ap.add_argument("--freq-warp", type=float, default=None, help="frequency warping of the students' windows, factor in [1-w, 1+w] (default: the run's own)")
    ap.add_argument("--eq-db", type=float, default=None, help="random smooth EQ of the students' windows, +- dB per cosine (default: the run's own)")
    ap.add_argument("--ema", type=float, default=None, help="decay of the weight average the students keep (default: the run's own)")
    ap.add_argument("--views", type=int, default=None,
                    help="augmented views per training clip (default: the run's own); the first ones are the run's, the teacher labels the new ones")
    ap.add_argument("--pitch-shift", type=float, default=None,
                    help="half the views raised by up to this many semitones in pitch and formants (default: the run's own)")
    ap.add_argument("--slow-down", type=float, default=None,
                    help="half the views made up to 1 + this times longer at the same pitch (default: the run's own)")
    ap.add_argument("--clean-negatives", type=float, default=None,
                    help="1: _unknown_/_silence_ clips take none of the teacher's phrase mass in KD (default: the run's own)")
    ap.add_argument("--transfer", type=Path, default=None,
                    help="another transfer set (`edgekd data transfer`) to distil on (default: the run's data/transfer)")
    ap.add_argument("--phrase-windows", type=int, default=0,
                    help="add this many phrase windows (the run's training clips warped, cut, over speech) to the transfer set")
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--ensemble", action="store_true",
                    help="also score the mean posterior of all the seeds' bundles on real voices (what averaging the draws gives)")
    args = ap.parse_args(argv)

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.eval import wakeword as we
    from edgekd.recipes.custom_wakeword import _export, _score, phrase_labels

    run = args.run
    r = _recipe(run)
    # the run's own settings: seeds trained with others get them in their file names
    own, own_arch, own_aug, own_data = r.alpha, r.arch, {k: getattr(r, k) for k in TAGS}, {k: getattr(r, k) for k in DATA_TAGS}
    for name, ok, what in SETTINGS:
        value = getattr(args, name)
        if value is not None:
            if not ok(value):
                raise SystemExit(f"error: --{name.replace('_', '-')} must be {what}")
            r = replace(r, **{name: value})
    if args.arch is not None:
        from edgekd.train.catalog import arch_names

        if args.arch not in arch_names("student"):
            raise SystemExit(f"error: --arch {args.arch}: not a student ({', '.join(arch_names('student'))})")
        r = replace(r, arch=args.arch)
    if args.views is not None:
        if args.views < 1:
            raise SystemExit("error: --views must be >= 1")
        r = replace(r, views=args.views)
    transfer = args.transfer or run / "data" / "transfer"
    if not (transfer / "transfer_meta.json").is_file():
        raise SystemExit(f"error: --transfer {transfer}: not a transfer set (no transfer_meta.json); make one with `edgekd data transfer`")
    if len(r.phrases) != 1:
        raise SystemExit(f"error: {run} is a command set ({', '.join(r.phrases)}); this bench takes one phrase")
    label = phrase_labels(r.phrases)[0]
    if args.phrase_windows < 0:
        raise SystemExit("error: --phrase-windows must be >= 0")
    if args.phrase_windows:
        from edgekd.data.transfer import with_phrase_windows
        from edgekd.recipes.custom_wakeword import training_clips

        plus = transfer.with_name(f"{transfer.name}-phrase{args.phrase_windows}")
        if not (plus / "transfer_meta.json").is_file():
            with_phrase_windows(transfer, plus, {label: training_clips(run / "data" / "clips", label)}, args.phrase_windows, seed=r.seed)
        transfer = plus
    out_json = args.json or REPO / "bench" / "results" / f"realdev_wakeword_seeds_{label}.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    dev = args.realdev / "wakeword_dev"
    real = real_negatives(args.realdev, REPO / "runs" / "realdev_wakeword" / "real_negatives.wav") if (dev / label).is_dir() else None
    if real is None:
        print(f"notice: {dev / label} is absent: synthesized material only (real voices are measurement only; nothing needs them)")
    golden = sorted((run / "data" / "eval" / "validation" / label).glob("*.wav"))[0]
    rows = []
    for seed in args.seeds:
        tag = (f"seed{seed}-fkd{r.feature_kd:g}" + (f"-a{r.alpha:g}" if r.alpha != own else "") + (f"-{r.arch}" if r.arch != own_arch else "")
               + "".join(f"-{t}{getattr(r, k):g}" for k, t in TAGS.items() if getattr(r, k) != own_aug[k])
               + "".join(f"-{t}{getattr(r, k):g}" for k, t in DATA_TAGS.items() if getattr(r, k) != own_data[k])
               + (f"-{transfer.name}" if transfer != run / "data" / "transfer" else ""))
        ckpt, acc = _student(run, r, seed, run / "seeds" / f"{tag}.pt", transfer, own_data)
        bundle = run / "seeds" / f"{tag}-bundle"
        _export(ckpt, bundle, r, golden, int8=False)
        row: dict[str, Any] = {"seed": seed, "checkpoint": str(ckpt), "bundle": str(bundle), "test_accuracy_synthesized": acc}
        for split in ("validation", "test"):
            res = _score(bundle, r, split, run / "data", r.target_fa_per_hour)[label]
            row[f"synthesized_{split}"] = we.frr_points(res["sweep"])
        if real is not None:
            res = evaluate(bundle, label, dev / label, dev / f"{label}.tsv", [real])
            row["real"] = {p: res[p] for p in POINTS}
            # the yardstick: the real negatives and the run's synthesized test speech together
            res = evaluate(bundle, label, dev / label, dev / f"{label}.tsv", [real, run / "data" / "eval" / "test" / "negatives.wav"])
            row["real_and_synthesized"] = {p: res[p] for p in POINTS}
        print(f"seed {seed}: " + "; ".join(_line(k, row[k]) for k in ("synthesized_test", "real", "real_and_synthesized") if k in row), flush=True)
        rows.append(row)
    ensemble = None
    if args.ensemble and (real is None or len(rows) < 2):
        print("notice: --ensemble scores real voices and needs two seeds or more; skipped")
    elif args.ensemble:
        res = evaluate_mean([Path(row["bundle"]) for row in rows], label, dev / label, dev / f"{label}.tsv", [real])
        ensemble = {"seeds": [row["seed"] for row in rows], "real": {p: res[p] for p in POINTS}}
        print(_line(f"mean posterior of seeds {' '.join(str(s) for s in ensemble['seeds'])}: real", ensemble["real"]), flush=True)
    summary = {k: _stats(rows, k) for k in ("synthesized_validation", "synthesized_test", "real", "real_and_synthesized")
               if any(k in row for row in rows)}
    for k, s in summary.items():
        print(f"{k}: " + ", ".join(f"{fa:g} FA/h {100 * v['mean']:.1f} +- {100 * v['std']:.1f}%" for fa, v in zip(FA_POINTS, s.values(), strict=True)
                                   if v["mean"] is not None))
    command = " ".join(["python bench/realdev_wakeword_seeds.py", *(sys.argv[1:] if argv is None else [str(a) for a in argv])])
    write_json(out_json, {"what": f"the recipe's final student of {run} trained again with other seeds (float streaming bundles); "
                                  "FRR on its synthesized validation/test material and on real dev voices (measurement only)",
                          "command": command, "date": datetime.date.today().isoformat(), "label": label,
                          "arch": r.arch, "feature_kd": r.feature_kd, "alpha": r.alpha,
                          "freq_warp": r.freq_warp, "eq_db": r.eq_db, "ema": r.ema, "views": r.views, "pitch_shift": r.pitch_shift,
                          "slow_down": r.slow_down, "clean_negatives": bool(r.clean_negatives), "transfer": str(transfer),
                          "rows": rows, "summary": summary, **({"ensemble": ensemble} if ensemble else {}), "machine": machine_facts()})
    print(f"-> {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
