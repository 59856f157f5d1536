"""The real-speech yardstick: every KWS bundle under models/ (and any --bundle) on real people's speech.

    python bench/realdev.py                      (make realdev)
    python bench/realdev.py --bundle runs/x/bundle-int8 --json runs/realdev-x.json

Reads ../shared/realdev/gsc_v2_test_dev (Speech Commands v0.02 canonical 12-class test set, about half of its
speakers; see that folder's README): top-1 accuracy, per-label recall and the confusion matrix of each bundle
through the runtime (ONNX Runtime; what the board runs), written to bench/results/realdev.json. These recordings
are for measuring and choosing only: nothing here trains on them. When the folder is absent this says so and exits
0 without numbers. A result on them is "real speech (dev speakers)", not a claim about unseen speakers.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REALDEV = REPO.parent / "shared" / "realdev"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kws_bundles(root: Path, gsc: Path) -> list[Path]:
    """Bundles under ``root`` whose manifest says task kws and whose keywords (labels but ``_unknown_`` / ``_silence_``)
    are all folders of the Speech Commands layout ``gsc``. A wake word is a kws bundle too, but its phrase is not a
    Speech Commands word: it is scored elsewhere (``bench/realdev_wakeword.py``), as are SED bundles."""
    out = []
    for m in sorted(root.glob("*/manifest.json")):
        try:
            d = json.loads(m.read_text())
        except (OSError, ValueError):
            continue
        keywords = [lab for lab in d.get("labels", []) if not lab.startswith("_")]
        if d.get("task") == "kws" and keywords and all((gsc / lab).is_dir() for lab in keywords):
            out.append(m.parent)
    return out


def evaluate_bundle(bundle: Path, gsc: Path, backend: str = "onnx") -> dict:
    from edgekd.eval.kws import evaluate_kws
    from edgekd.runtime.detector import load_kws

    det = load_kws(bundle, backend=backend, threads=1)
    r = evaluate_kws(det, gsc, split="all")
    model_file = bundle / det.manifest.model_file
    return {"bundle": str(bundle.resolve().relative_to(REPO)) if bundle.resolve().is_relative_to(REPO) else str(bundle),
            "name": det.manifest.name, "model_sha256": _sha(model_file), "quantization": det.manifest.quantization,
            "backend": backend, "accuracy": r["accuracy"], "n": r["n"], "per_label_recall": r["per_label"], "labels": r["labels"],
            "confusion": r["confusion"]}


def evaluate_checkpoint(path: Path, gsc: Path) -> dict:
    import numpy as np

    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.evaluate import checkpoint_logits

    labels = Checkpoint.load(path).labels
    logits, yy = checkpoint_logits(path, gsc)
    pred = logits.argmax(-1)
    recall = {lab: float(np.mean(pred[yy == i] == i)) if np.any(yy == i) else None for i, lab in enumerate(labels)}
    return {"checkpoint": str(path), "name": path.name, "sha256": _sha(path), "backend": "torch",
            "accuracy": float(np.mean(pred == yy)), "n": int(yy.shape[0]), "per_label_recall": recall, "labels": list(labels)}


def table_md(rows: list[dict]) -> str:
    labels = rows[0]["labels"] if rows else []
    head = "| bundle | accuracy | " + " | ".join(labels) + " |"
    sep = "|---|---|" + "---|" * len(labels)
    lines = [head, sep]
    for r in rows:
        rec = " | ".join("-" if r["per_label_recall"].get(lab) is None else f"{100 * r['per_label_recall'][lab]:.0f}" for lab in labels)
        lines.append(f"| `{r['name']}` ({r['backend']}) | **{100 * r['accuracy']:.2f}%** | {rec} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV, help="the realdev folder (default: ../shared/realdev)")
    ap.add_argument("--bundle", type=Path, action="append", default=[], help="also score this bundle (repeatable)")
    ap.add_argument("--checkpoint", type=Path, action="append", default=[],
                    help="also score this checkpoint in torch (a teacher, or a student before export; repeatable)")
    ap.add_argument("--no-models", action="store_true", help="score only the --bundle/--checkpoint ones, not models/*")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "realdev.json")
    args = ap.parse_args(argv)
    gsc = args.realdev / "gsc_v2_test_dev"
    if not gsc.is_dir():
        print(f"realdev: {gsc} is absent; no real-speech numbers (nothing written)", file=sys.stderr)
        return 0
    bundles = ([] if args.no_models else kws_bundles(REPO / "models", gsc)) + list(args.bundle)
    if not bundles and not args.checkpoint:
        print("realdev: no KWS bundle to score", file=sys.stderr)
        return 2
    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json

    rows = []
    for b in bundles:
        r = evaluate_bundle(b, gsc)
        print(f"{r['name']:32s} {100 * r['accuracy']:6.2f}%  ({r['n']} clips)", flush=True)
        rows.append(r)
    for c in args.checkpoint:
        r = evaluate_checkpoint(c, gsc)
        print(f"{r['name']:32s} {100 * r['accuracy']:6.2f}%  ({r['n']} clips, torch)", flush=True)
        rows.append(r)
    result = {"what": "top-1 accuracy on real speech (dev speakers): Speech Commands v0.02 12-class test set, about half its speakers",
              "data": str(gsc), "command": "python bench/realdev.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "date": datetime.date.today().isoformat(), "machine": machine_facts(), "results": rows, "table_md": table_md(rows)}
    write_json(args.json, result)
    print(table_md(rows))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
