"""Which parts of the voice bank earn their synthesis time? The same DS-CNN recipe (no teacher) trained on
espeak-ng alone, espeak-ng plus each other engine, and all engines, with and without rooms (simulated RIRs, real
background recordings, clipping), at the same number of optimizer steps; scored on the synthesized test split
(held-out voices of every engine) and on real people (../shared/realdev, dev speakers; measurement only).

    python bench/voices_study.py --data runs/vb/data          (make voices-study)

--data is one `edgekd data synth-kws` folder made with every engine (its clips.tsv says which engine said each
clip); each variant trains on the clips of its engines (plus the noise clips). Features and models are cached
under --out, so a rerun only trains what is missing. Writes bench/results/voices_study.json and a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ALL = ("kokoro", "piper", "espeak", "flite", "festival")


def variants(engines_present: tuple[str, ...]) -> list[tuple[str, tuple[str, ...], bool]]:
    """(name, engines, rooms): espeak alone, espeak + each other engine, all; rooms off for the two ends."""
    out = [("espeak", ("espeak",), False), ("espeak + rooms", ("espeak",), True)]
    out += [(f"espeak + {e} + rooms", ("espeak", e), True) for e in engines_present if e != "espeak"]
    out += [("all engines", engines_present, False), ("all engines + rooms", engines_present, True)]
    return out


def engine_of_files(data: Path) -> dict[str, str]:
    rows = (data / "clips.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return {r.split("\t")[0]: r.split("\t")[1] for r in rows}


def subset_by_engine(fs, engine_of: dict[str, str], engines: tuple[str, ...], keep_noise: bool = True):  # type: ignore[no-untyped-def]
    """Rows whose clip was said by one of ``engines``; clips no engine said (noise) are kept with ``keep_noise``."""
    from edgekd.train.features import FeatureSet

    keep_clip = np.array([engine_of.get(f.split("@")[0], "") in (("",) if keep_noise else ()) + engines for f in fs.files])
    m = keep_clip[fs.clip]
    return FeatureSet(fs.x[m], fs.y[m], fs.clip[m], fs.labels, f"{fs.key}-{'+'.join(engines)}", fs.files)


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO / "runs" / "vb" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "voices_study")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "voices_study.json")
    ap.add_argument("--realdev", type=Path, default=REPO.parent / "shared" / "realdev")
    ap.add_argument("--steps", type=int, default=3000, help="optimizer steps per model (batch 128), the same for every variant")
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch threads per training")
    ap.add_argument("--workers", type=int, default=2, help="processes for the feature build")
    ap.add_argument("--only", default="", help="comma-separated variant names to train (default: all)")
    return ap.parse_args(argv)


def _train_variant(args: argparse.Namespace, name: str, engines: tuple[str, ...], rooms: bool, seed: int, train: Any, data: Any,
                   test_by_engine: dict[str, Any], real: Any) -> dict[str, Any]:
    """One DS-CNN on the clips of ``engines`` for ``args.steps`` optimizer steps; its accuracies."""
    import torch

    from edgekd.train.config import TrainConfig
    from edgekd.train.kws_objective import train_model
    from edgekd.train.loop import accuracy

    epochs = max(1, int(round(args.steps * 128 / len(train))))
    cfg = TrainConfig(arch="dscnn", epochs=epochs, seed=seed, threads=args.threads, alpha=0.0)
    t = time.time()
    torch.manual_seed(seed)
    model, hist = train_model(cfg, train, data.validation, progress=False)
    return {"variant": name, "engines": list(engines), "rooms": rooms, "seed": seed, "steps": args.steps,
            "actual_steps": hist["steps"], "epochs": epochs, "train_clips": int(np.unique(train.clip).shape[0]),
            "train_rows": len(train), "train_seconds": round(time.time() - t, 1),
            "synth_test_accuracy": accuracy(model, data.test),
            "synth_test_accuracy_by_engine": {e: accuracy(model, fs) for e, fs in test_by_engine.items() if len(fs)},
            "realdev_accuracy": accuracy(model, real) if real is not None else None}


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.data import KWS12_LABELS
    from edgekd.train.features import build_feature_set
    from edgekd.train.pipeline import load_kws_data

    if not (args.data / "clips.tsv").is_file():
        print(f"error: {args.data}/clips.tsv missing: make --data with `edgekd data synth-kws` (voice bank)", file=sys.stderr)
        return 2
    gsc = args.realdev / "gsc_v2_test_dev"
    real = build_feature_set(gsc, KWS12_LABELS, "all", window_frames=98, workers=args.workers) if gsc.is_dir() else None
    if real is None:
        print(f"notice: {gsc} is absent: synthesized test accuracy only", file=sys.stderr)
    engine_of = engine_of_files(args.data)
    present = tuple(e for e in ALL if e in set(engine_of.values()))
    cache = args.out / "cache"
    data = {rooms: load_kws_data(args.data, views=args.views, cache_dir=cache, workers=args.workers, rooms=rooms) for rooms in (False, True)}
    test_by_engine = {e: subset_by_engine(data[False].test, engine_of, (e,), keep_noise=False) for e in present}
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    results = []
    prev = json.loads(args.json.read_text()) if args.json.is_file() else {}
    done = {(r["variant"], r["seed"]): r for r in prev.get("runs", [])}
    for name, engines, rooms in variants(present):
        if wanted and name not in wanted:
            continue
        train = subset_by_engine(data[rooms].train, engine_of, engines)
        for seed in range(args.seeds):
            if (name, seed) in done and done[(name, seed)]["steps"] == args.steps:
                results.append(done[(name, seed)])
                continue
            results.append(_train_variant(args, name, engines, rooms, seed, train, data[rooms], test_by_engine, real))
            print(json.dumps(results[-1]), flush=True)
            _write(args, results, machine_facts, write_json, present)
    _write(args, results, machine_facts, write_json, present)
    return 0


def _table(results: list[dict]) -> str:
    lines = ["| variant | training voices | rooms | train clips | epochs | synthesized test | real speech (dev speakers) |",
             "|---|---|---|---|---|---|---|"]
    by: dict[str, list[dict]] = {}
    for r in results:
        by.setdefault(r["variant"], []).append(r)
    for name, rs in by.items():
        syn = np.array([r["synth_test_accuracy"] for r in rs]) * 100
        real = [r["realdev_accuracy"] for r in rs if r["realdev_accuracy"] is not None]
        real_s = f"{100 * np.mean(real):.2f}" + (f" +- {100 * np.std(real):.2f}" if len(real) > 1 else "") if real else "-"
        lines.append(f"| {name} | {', '.join(rs[0]['engines'])} | {'yes' if rs[0]['rooms'] else 'no'} | {rs[0]['train_clips']} | {rs[0]['epochs']} | "
                     f"{syn.mean():.2f} | **{real_s}** |")
    return "\n".join(lines)


def _write(args, results, machine_facts, write_json, present) -> None:  # type: ignore[no-untyped-def]
    write_json(args.json, {"what": "DS-CNN (no teacher) trained on subsets of one voice-bank dataset, same optimizer steps; accuracy on "
                                   "the synthesized test split (held-out voices) and on real speech (dev speakers)",
                           "command": "python bench/voices_study.py " + " ".join(sys.argv[1:]), "data": str(args.data),
                           "engines_present": list(present), "date": datetime.date.today().isoformat(), "machine": machine_facts(),
                           "runs": results, "table_md": _table(results)})


if __name__ == "__main__":
    sys.exit(main())
