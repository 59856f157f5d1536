"""``edgekd tune``: choose a bundle's post-processing (stride, smoothing, threshold) on validation data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.common import friendly_errors, notice, write_json

__all__ = ["tune_cmd"]


@friendly_errors
def tune_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    data: Annotated[Path, typer.Option("--data", help="Speech Commands-layout folder; its validation split is used.")],
    split: Annotated[str, typer.Option(help="Split to tune on (never the test split you report).")] = "validation",
    write: Annotated[bool, typer.Option("--write", help="Store the chosen settings in the bundle (golden detections regenerated).")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the whole sweep here.")] = None,
) -> None:
    """Sweep stride (40/80 ms), smoothing window and threshold on a stream of the validation clips; pick the
    best recall minus false alarms per keyword clip (ties: cheaper stride, then higher threshold)."""
    from edgekd.cli.common import check_writable

    check_writable(json_out, "--json")

    from edgekd.errors import ConfigError
    from edgekd.runtime.detector import load_model
    from edgekd.tune import sweep_postprocess

    if split == "test":
        raise ConfigError("tuning on the test split would make its numbers meaningless; use validation")
    res = sweep_postprocess(load_model(bundle), data, split=split)
    if json_out is not None:
        write_json(json_out, {"chosen": res.postprocess(), "recall": res.recall, "false_alarms": res.false_alarms,
                              "keyword_clips": res.keyword_clips, "audio_seconds": res.audio_seconds, "sweep": res.table})
    notice(f"chosen {res.postprocess()}: recall {res.recall:.3f} on {res.keyword_clips} keyword clips, "
           f"{res.false_alarms} false alarms in {res.audio_seconds:.0f} s of {split} audio")
    if write:
        from edgekd.export.bundle import apply_postprocess

        apply_postprocess(bundle, res.postprocess(), postprocess_tuned_on=f"{data} ({split})")
        notice(f"wrote the settings into {bundle}/manifest.json")
