"""``edgekd export``: checkpoints to bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.common import friendly_errors, notice

app = typer.Typer(help="Export a checkpoint to a bundle the runtime loads.", no_args_is_help=True)


@app.command("onnx")
@friendly_errors
def onnx_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint from `edgekd train`.")],
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write (replaced atomically).")],
    golden_wav: Annotated[Optional[Path], typer.Option(help="A WAV to store with its detections as the bundle's stream self-test.")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="Detection threshold stored in the manifest.")] = None,
) -> None:
    """Write BUNDLE: model.onnx (fp32, dynamic batch), manifest.json (sha256 of every file), golden/."""
    from edgekd.export.onnx import export_onnx

    pp = {"threshold": threshold} if threshold is not None else None
    m = export_onnx(checkpoint, out, golden_wav=golden_wav, postprocess=pp)
    size = (out / m.model_file).stat().st_size
    notice(f"wrote {out}: {m.model_file} {size / 1024:.1f} KiB, {m.provenance['params']} params, "
           f"torch vs ONNX max abs {m.provenance['torch_vs_onnx_max_abs']:.1e}")
