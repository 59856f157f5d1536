"""``edgekd tune``: choose a bundle's post-processing (stride, smoothing, threshold) on validation data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.common import friendly_errors, notice
from edgekd.core.fsutil import write_json

__all__ = ["tune_cmd", "MIN_CLIPS_PER_LABEL"]

# Fewer clips than this of any keyword and a threshold chosen on them is noise: --write then needs --force.
MIN_CLIPS_PER_LABEL = 10


@friendly_errors
def tune_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    data: Annotated[Path, typer.Option("--data", help="Speech Commands-layout folder; its validation split is used.")],
    split: Annotated[str, typer.Option(help="Split to tune on (never the test split you report).")] = "validation",
    write: Annotated[bool, typer.Option("--write", help="Store the chosen settings in the bundle (golden detections regenerated).")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the whole sweep here.")] = None,
    force: Annotated[bool, typer.Option("--force", help=f"--write even with fewer than {MIN_CLIPS_PER_LABEL} clips of a keyword.")] = False,
    stride_ms: Annotated[Optional[int], typer.Option("--stride-ms", min=10, help="Sweep this stride only (a multiple of 10 ms): a CPU "
                                                                                  "budget, one model call per stride; smoothing and "
                                                                                  "threshold are still chosen.")] = None,
) -> None:
    """Sweep stride (40/80 ms; a streaming-state bundle: its hop, twice and four times it), smoothing window and threshold on a
    stream of the validation clips; pick the best recall minus false alarms per keyword clip (ties: cheaper stride,
    then higher threshold)."""
    from edgekd.cli.common import check_writable

    check_writable(json_out, "--json")

    from edgekd.bench.machine import provenance
    from edgekd.core.errors import ConfigError
    from edgekd.core.progress import Progress
    from edgekd.eval.tune import sweep_postprocess
    from edgekd.runtime.detector import load_kws

    if split == "test":
        raise ConfigError("tuning on the test split would make its numbers meaningless; use validation")
    det = load_kws(bundle)
    if det.verifier is not None:
        raise ConfigError(f"{bundle} has a second stage (a verifier), and its thresholds apply to the verifier's score, which this "
                          "sweep does not replay; choose them with `edgekd eval-stream` (its threshold sweep) or the wake-word recipe")
    if write and not force:
        from edgekd.data.speech_commands import SpeechCommands

        clips = SpeechCommands(data).clips(det.labels, split)
        counts = {lab: sum(c.label == lab for c in clips) for lab in det.manifest.keyword_labels}
        few = sorted((n, lab) for lab, n in counts.items() if n < MIN_CLIPS_PER_LABEL)
        if few:
            raise ConfigError(f"only {few[0][0]} {split} clip(s) of {few[0][1]!r} (at least {MIN_CLIPS_PER_LABEL} per keyword to --write); "
                              "give more validation data, or --force")
    with Progress("tune", unit="setting") as bar:
        res = sweep_postprocess(det, data, split=split, progress=bar.callback(), stride_ms=stride_ms)
    if json_out is not None:
        write_json(json_out, {"chosen": res.postprocess(), "recall": res.recall, "false_alarms": res.false_alarms,
                              "keyword_clips": res.keyword_clips, "audio_seconds": res.audio_seconds, "sweep": res.table,
                              "provenance": provenance(f"keyword recall and false alarms over post-processing settings on {data} ({split})", bundle)})
    notice(f"chosen {res.postprocess()}: recall {res.recall:.3f} on {res.keyword_clips} keyword clips, "
           f"{res.false_alarms} false alarms in {res.audio_seconds:.0f} s of {split} audio")
    if write:
        from edgekd.export.bundle import apply_postprocess

        apply_postprocess(bundle, res.postprocess(), postprocess_tuned_on=f"{data} ({split})")
        notice(f"wrote the settings into {bundle}/manifest.json")
