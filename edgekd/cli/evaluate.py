"""``edgekd eval``: accuracy of a bundle on a Speech Commands-layout folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.common import friendly_errors, notice, write_json

__all__ = ["evaluate"]


@friendly_errors
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    data: Annotated[Path, typer.Option("--data", help="Speech Commands-layout folder (one folder per word).")],
    split: Annotated[str, typer.Option(help="train, validation, test or all (a folder without split lists is evaluated whole).")] = "test",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full result (accuracy, per_label, confusion) here.")] = None,
    backend: Annotated[str, typer.Option(help="Inference backend: auto, onnx or litert.")] = "auto",
    threads: Annotated[int, typer.Option(help="Inference threads.")] = 1,
) -> None:
    """Top-1 accuracy, per-label recall and confusion matrix of BUNDLE on a data folder.

    Word folders that are not model labels count as _unknown_; folders named _unknown_ or
    _silence_ are taken as those labels.
    """
    from edgekd.evaluate import evaluate_kws
    from edgekd.runtime.detector import load_model

    det = load_model(bundle, backend=backend, threads=threads)
    res = evaluate_kws(det, data, split)
    if json_out is not None:
        write_json(json_out, res)
    worst = sorted(((v, k) for k, v in res["per_label"].items() if v is not None))[:3]
    notice(f"accuracy {res['accuracy']:.4f} on {res['n']} clips ({res['split']}); lowest recall: "
           + ", ".join(f"{k} {v:.3f}" for v, k in worst))
    print(f"{res['accuracy']:.4f}")
