"""``edgekd eval``: accuracy of a bundle on a Speech Commands-layout folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.common import friendly_errors, notice
from edgekd.core.fsutil import write_json

__all__ = ["evaluate"]


@friendly_errors
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    data: Annotated[Optional[Path], typer.Option("--data", help="KWS: Speech Commands-layout folder (one folder per word).")] = None,
    split: Annotated[str, typer.Option(help="train, validation, test or all (a folder without split lists is evaluated whole).")] = "test",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full result (accuracy, per_label, confusion) here.")] = None,
    backend: Annotated[str, typer.Option(help="Inference backend: auto, onnx or litert.")] = "auto",
    threads: Annotated[int, typer.Option(min=1, max=64, help="Inference threads.")] = 1,
    sed_annotations: Annotated[Optional[Path], typer.Option(help="SED: DCASE tsv (filename onset offset event_label) of --audio.")] = None,
    audio: Annotated[Optional[Path], typer.Option(help="SED: folder of the annotated WAVs.")] = None,
) -> None:
    """Top-1 accuracy, per-label recall and confusion matrix of BUNDLE on a data folder.

    Word folders that are not model labels count as _unknown_; folders named _unknown_ or
    _silence_ are taken as those labels. For a sound-event bundle give --sed-annotations TSV --audio DIR
    instead: event-based F1 (200 ms onset collar, offset max(200 ms, 20%)), segment-based F1 (1 s), error
    rates and per-class figures, from the runtime's own events.
    """
    from edgekd.cli.common import check_writable

    check_writable(json_out, "--json")

    from edgekd.bench.machine import provenance
    from edgekd.core.errors import ConfigError
    from edgekd.core.progress import Progress
    from edgekd.runtime.detector import load_model

    det = load_model(bundle, backend=backend, threads=threads)
    if det.manifest.task == "sed" or sed_annotations is not None:
        if det.manifest.task != "sed":
            raise ConfigError(f"{bundle} is a {det.manifest.task} bundle; --sed-annotations needs a sound-event bundle")
        if sed_annotations is None or audio is None:
            raise ConfigError("a sound-event bundle is evaluated with --sed-annotations TSV --audio DIR")
        from edgekd.eval.sed import evaluate_sed_bundle

        with Progress("eval", unit="file") as bar:
            res = evaluate_sed_bundle(det, sed_annotations, audio, progress=bar.callback())
        res["provenance"] = provenance("event- and segment-based F1 of the runtime's events", bundle)
        if json_out is not None:
            write_json(json_out, res)
        ev, seg = res["event_based"], res["segment_based"]
        notice(f"event-F1 {ev['overall']['f1']:.4f} (ER {ev['error_rate']:.2f}), segment-F1 {seg['overall']['f1']:.4f} "
               f"(ER {seg['error_rate']:.2f}) on {res['files']} files, {res['events_reference']} events")
        print(f"{ev['overall']['f1']:.4f} {seg['overall']['f1']:.4f}")
        return
    if data is None:
        raise ConfigError("give the data folder: --data DIR")
    from edgekd.eval.kws import evaluate_kws

    with Progress("eval", unit="clip") as bar:
        res = evaluate_kws(det, data, split, progress=bar.callback())
    res["provenance"] = provenance(f"top-1 accuracy on {data} ({res['split']})", bundle)
    if json_out is not None:
        write_json(json_out, res)
    worst = sorted(((v, k) for k, v in res["per_label"].items() if v is not None))[:3]
    notice(f"accuracy {res['accuracy']:.4f} on {res['n']} clips ({res['split']}); lowest recall: "
           + ", ".join(f"{k} {v:.3f}" for v, k in worst))
    print(f"{res['accuracy']:.4f}")
