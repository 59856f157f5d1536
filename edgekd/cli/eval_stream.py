"""``edgekd eval-stream``: FRR at FA/h of a bundle or an ONNX teacher on positives + long negative audio."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgekd.cli.common import friendly_errors, notice, positive
from edgekd.core.fsutil import write_json

__all__ = ["eval_stream_cmd"]


@friendly_errors
def eval_stream_cmd(
    bundle: Annotated[Optional[Path], typer.Argument(help="Bundle to evaluate (or give --teacher).", show_default=False)] = None,
    teacher: Annotated[Optional[str], typer.Option(help="Evaluate a teacher instead: oww:NAME (openWakeWord 0.4.0 head).")] = None,
    positives: Annotated[Path, typer.Option(help="Folder of WAVs holding the wake phrase.")] = Path("positives"),
    annotations: Annotated[Path, typer.Option(help="DCASE-style tsv: filename, onset, offset, event_label (seconds).")] = Path("positives.tsv"),
    negatives: Annotated[list[Path], typer.Option("--negatives", help="Negative audio (repeat for several WAVs; streamed back to back).")] = [],  # noqa: B006
    json_out: Annotated[Path, typer.Option("--json", help="Write the sweep and the chosen threshold here.")] = Path("eval_stream.json"),
    det: Annotated[Optional[Path], typer.Option(help="Also draw the DET curve (FRR vs FA/h) to this PNG.")] = None,
    label: Annotated[Optional[str], typer.Option(help="Bundle label to score (default: its only keyword).")] = None,
    target_fa_per_hour: Annotated[float, typer.Option(callback=positive, help="Pick the threshold with the lowest FRR at or under this FA/h.")] = 0.5,
    write_threshold: Annotated[bool, typer.Option("--write-threshold", help="Store the chosen threshold for LABEL in the bundle's manifest.")] = False,
    backend: Annotated[str, typer.Option(help="Bundle backend: auto, onnx or litert.")] = "auto",
) -> None:
    """Stream every positive file and the negative audio through the model; a positive counts if a detection
    lands between its onset and offset + 1 s; false accepts are counted on the negatives with a 1 s debounce
    (MLPerf Tiny streaming rules). Prints FRR at the target FA/h and writes the whole threshold sweep."""
    from edgekd.cli.common import check_writable

    check_writable(json_out, "--json")
    check_writable(det, "--det")

    import numpy as np

    from edgekd.bench.machine import provenance
    from edgekd.core.errors import ConfigError
    from edgekd.core.progress import Progress
    from edgekd.core.units import SAMPLE_RATE
    from edgekd.eval import wakeword as we
    from edgekd.runtime.audio import wav_blocks

    _check_inputs(bundle, teacher, positives, negatives)
    scorer, target, system, detector = _scorer(bundle, teacher, label, backend)
    rows, wavs = we.annotated_positives(positives, annotations, target)

    def load(p: Path) -> Iterator[np.ndarray]:  # read from disk block by block: an hour of negatives in constant memory
        return wav_blocks(p, SAMPLE_RATE, notice=notice)

    res = we.evaluate_stream(scorer, rows, wavs, list(negatives), load, target_fa_per_hour,
                             progress=lambda what, n: Progress(what, n, "file"))
    neg_s, sweep, chosen = res["negative_seconds"], res["sweep"], res["chosen"]
    if neg_s < 60.0:
        notice(f"warning: only {neg_s:.1f} s of negative audio; FA/h from less than a minute is meaningless (use an hour or more)")
    res = {"system": system, "label": target, **res,
           "provenance": provenance(f"FRR at FA/h of {target!r} (streamed positives and negatives)", bundle)}
    write_json(json_out, res)
    if det is not None:
        we.det_plot({system: sweep}, det, target_fa_per_hour)
        notice(f"wrote {det}")
    if chosen is None:
        notice(f"{system}: no threshold reaches {target_fa_per_hour} FA/h (lowest: {min(r['fa_per_hour'] for r in sweep):.2f}) -> {json_out}")
        raise typer.Exit(1)
    fa = chosen["fa_per_hour"]
    notice(f"{system} [{target}]: FRR {100 * chosen['frr']:.1f}% ({chosen['hits']}/{chosen['positives']} detected) at "
           f"{fa:.2f} FA/h (threshold {chosen['threshold']:.2f}) on {neg_s / 3600:.2f} h of negatives -> {json_out}")
    if write_threshold:
        if bundle is None:
            raise ConfigError("--write-threshold needs a BUNDLE")
        from edgekd.export.bundle import apply_postprocess

        assert detector is not None
        thr = dict(detector.postprocess.thresholds, **{target: chosen["threshold"]})
        apply_postprocess(bundle, {"thresholds": thr}, eval_stream_threshold={"label": target, "fa_per_hour": fa if math.isfinite(fa) else None})
        notice(f"{bundle}: threshold for {target} set to {chosen['threshold']:.2f}")
    print(f"{chosen['frr']:.4f} {fa:.4f} {chosen['threshold']:.2f}")


def _check_inputs(bundle: Path | None, teacher: str | None, positives: Path, negatives: list[Path]) -> None:
    from edgekd.core.errors import ConfigError, DataError

    if (bundle is None) == (teacher is None):
        raise ConfigError("give a BUNDLE or --teacher oww:NAME (one of them)")
    if not negatives:
        raise ConfigError("give the negative audio: --negatives WAV [--negatives WAV ...]")
    for n in negatives:
        if not n.is_file():
            raise DataError(f"--negatives {n}: no such file")
    if not positives.is_dir():
        raise DataError(f"--positives {positives}: not a folder of WAVs")


def _scorer(bundle: Path | None, teacher: str | None, label: str | None, backend: str) -> tuple[Any, str, str, Any]:
    """(scorer, label scored, system name, the bundle's detector or None) for a bundle or an ONNX teacher."""
    from edgekd.core.errors import ConfigError
    from edgekd.eval import wakeword as we

    if teacher is not None:
        from edgekd.train.teachers.oww import OnnxTeacher, parse_teacher_spec

        return OnnxTeacher(teacher).timeline, label or parse_teacher_spec(teacher)[1], teacher, None
    from edgekd.runtime.detector import load_kws

    assert bundle is not None
    detector = load_kws(bundle, backend=backend)
    kws = detector.manifest.keyword_labels
    if label is None and len(kws) != 1:
        raise ConfigError(f"the bundle has {len(kws)} keywords; choose one with --label ({', '.join(kws)})")
    target = label or kws[0]
    return we.bundle_scorer(detector, target), target, detector.manifest.name, detector
