"""The SED recipe end to end, shared by ``edgekd train sed`` and ``bench/sed.py``: teacher CRNN -> causal student
distilled on labelled and transfer soundscapes -> QAT int8 -> post-processing tuned on validation -> bundles.

Every trained model is saved under ``out`` (``teacher.pt``, ``student_kd.pt``, ``student_kd_qat.pt``) and reused on
a rerun; delete a file to retrain that step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekd.runtime.sed_post import SedPostprocessConfig, sigmoid

if TYPE_CHECKING:  # torch is imported where it is used, so that `edgekd --help` stays fast
    from torch import nn

    from edgekd.train.sed import SedSplit

__all__ = ["SedRecipe", "SedData", "load_sed_data", "fit_or_load", "train_sed_models", "score_sed_model", "export_scored_bundle", "sed_bundle",
           "DEFAULT_POSTPROCESS"]

HOP_MS = 40.0
# used while training (to pick the best epoch) and as the untuned reference in reports
DEFAULT_POSTPROCESS = SedPostprocessConfig(onset_threshold=0.5, offset_threshold=0.3, median_frames=3, min_duration_ms=80, merge_gap_ms=120)


@dataclass(frozen=True)
class SedRecipe:
    teacher_epochs: int = 20
    student_epochs: int = 60
    qat_epochs: int = 6
    alpha: float = 0.5
    temperature: float = 1.0
    threads: int = 2
    resume: bool = False  # continue a model whose training was interrupted (its OUT/<model>.pt.state)


@dataclass
class SedData:
    labels: list[str]
    train: SedSplit
    validation: SedSplit
    test: SedSplit
    transfer: list[np.ndarray]  # features of unlabelled soundscapes (empty without audio/transfer/)


def load_sed_data(root: Path) -> SedData:
    """Splits of an ``edgekd data synth-sed`` folder (or any folder with audio/<split>/ and <split>.tsv + labels)."""
    import json

    from edgekd.core.errors import DataError
    from edgekd.train.sed import load_sed_split, load_transfer

    meta = root / "sed_meta.json"
    if not meta.is_file():
        raise DataError(f"{meta}: missing; make the soundscapes with `edgekd data synth-sed {root}`")
    labels = json.loads(meta.read_text())["labels"]
    splits = [load_sed_split(root, s, labels) for s in ("train", "validation", "test")]
    transfer_dir = root / "audio" / "transfer"  # absent, or empty when made with --transfer 0: no transfer set
    transfer = load_transfer(root) if transfer_dir.is_dir() and any(transfer_dir.glob("*.wav")) else []
    return SedData(labels, *splits, transfer)


def fit_or_load(path: Path, arch: str, labels: list[str], train_fn: Callable[..., tuple[nn.Module, Any]], *, qat: bool = False,
                say: Callable[[str], None] = print, resume: bool = False) -> nn.Module:
    """Load the checkpoint ``path`` if it exists (it must hold ``arch`` for ``labels``), else train and save it in the
    one checkpoint format (``train.checkpoint``: it stores its own dimensions, QAT flag and validation score).
    Training state goes to ``<path>.state`` at each epoch's end; ``resume`` continues it (the state is removed once
    the checkpoint is saved)."""
    from edgekd.core.errors import ConfigError
    from edgekd.runtime.frontend import FrontendParams
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.qat import DEFAULT_WEIGHT_BITS

    if path.is_file():
        try:
            ck = Checkpoint.load(path)
        except ConfigError as e:
            raise ConfigError(f"{e}; delete it to retrain that step") from None
        if ck.arch != arch or list(ck.labels) != list(labels) or ck.is_qat != qat:
            raise ConfigError(f"{path} holds a {'QAT ' if ck.is_qat else ''}{ck.arch} for {list(ck.labels)}, not a "
                              f"{'QAT ' if qat else ''}{arch} for {labels}; delete it to retrain that step")
        say(f"reusing {path} (delete it to retrain)")
        return ck.build()
    from edgekd.train.loop import Resume

    state = Resume(path.with_name(path.name + ".state"), resume=resume)
    if state.path.is_file() and not resume:
        say(f"{state.path} holds an interrupted run; starting over (pass --resume to continue it)")
    m, hist = train_fn(progress=lambda s: say(f"{path.stem}: {s}"), state=state)
    params = FrontendParams()
    config: dict[str, Any] = {"task": "sed", "qat": qat, **({"qat_weight_bits": DEFAULT_WEIGHT_BITS} if qat else {})}
    Checkpoint(arch, tuple(labels), params.n_mels, params.to_dict(), 400, m.state_dict(), config=config,
               metrics={"val_event_f1": hist.get("best_val_event_f1")}).save(path)
    state.path.unlink(missing_ok=True)
    return m.eval()


def train_sed_models(d: SedData, out: Path, recipe: SedRecipe = SedRecipe(), say: Callable[[str], None] = print) -> dict[str, nn.Module]:
    """Teacher, distilled student (transfer soundscapes, when present, labelled by the teacher only) and its QAT
    int8 version."""
    import torch

    from edgekd.train.sed import predict_frames, qat_sed, train_sed

    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(recipe.threads)
    common: dict[str, Any] = {"threads": recipe.threads, "postprocess": DEFAULT_POSTPROCESS}
    teacher = fit_or_load(out / "teacher.pt", "sed-crnn", d.labels, lambda **kw: train_sed(
        "sed-crnn", d.train, d.validation, d.labels, epochs=recipe.teacher_epochs, alpha=0.0, **common, **kw), say=say, resume=recipe.resume)
    t_logits = predict_frames(teacher, d.train.feats)
    transfer = (d.transfer, predict_frames(teacher, d.transfer)) if d.transfer else None
    kd_args = {"teacher_logits": t_logits, "alpha": recipe.alpha, "temperature": recipe.temperature, "transfer": transfer, **common}
    student = fit_or_load(out / "student_kd.pt", "sed-causal-cnn", d.labels, lambda **kw: train_sed(
        "sed-causal-cnn", d.train, d.validation, d.labels, epochs=recipe.student_epochs, **kd_args, **kw), say=say, resume=recipe.resume)
    qat = fit_or_load(out / "student_kd_qat.pt", "sed-causal-cnn", d.labels, lambda **kw: qat_sed(
        student, d.train, d.validation, d.labels, epochs=recipe.qat_epochs, **kd_args, **kw), qat=True, say=say, resume=recipe.resume)
    return {"teacher": teacher, "student": student, "student_qat": qat}


def _scores(r: dict[str, Any]) -> dict[str, float]:
    return {"event_f1": r["event_based"]["overall"]["f1"], "event_macro_f1": r["event_based"]["macro_f1"],
            "event_error_rate": r["event_based"]["error_rate"], "segment_f1": r["segment_based"]["overall"]["f1"],
            "segment_error_rate": r["segment_based"]["error_rate"]}


def score_sed_model(m: nn.Module, d: SedData) -> tuple[SedPostprocessConfig, dict[str, Any]]:
    """Tune the post-processing on validation, then score the test split with it (and with the default, for
    reference); PSDS1 too when sed_scores_eval is installed (``psds`` extra)."""
    from edgekd.core.errors import ConfigError
    from edgekd.eval.sed_metrics import psds1
    from edgekd.train.profile import count_macs, count_params
    from edgekd.train.sed import evaluate_sed, predict_frames, tune_postprocess

    pp, val_f1 = tune_postprocess(predict_frames(m, d.validation.feats), d.validation, d.labels, HOP_MS)
    logits = predict_frames(m, d.test.feats)
    r = evaluate_sed(logits, d.test, d.labels, HOP_MS, pp)

    probs = {f: sigmoid(z) for f, z in zip(d.test.files, logits, strict=True)}
    try:
        psds: dict[str, float | str] = {"psds1": psds1(probs, HOP_MS / 1000, d.test.rows, d.labels, d.test.durations),
                                        "psds1_alpha_st0": psds1(probs, HOP_MS / 1000, d.test.rows, d.labels, d.test.durations, alpha_st=0.0)}
    except ConfigError as e:  # the optional extra is not installed: the report says so
        psds = {"psds1": f"not computed: {e}"}
    return pp, {**_scores(r), **psds, "validation_event_f1": val_f1, "postprocess": pp.to_dict(),
                "with_default_postprocess": _scores(evaluate_sed(logits, d.test, d.labels, HOP_MS, DEFAULT_POSTPROCESS)),
                "params": count_params(m), "macs_per_second_of_audio": count_macs(m, (1, 100, 40)),
                "class_wise_event_f1": {k: v["f1"] for k, v in r["event_based"]["class_wise"].items()}}


def sed_bundle(out: Path, labels: list[str], int8: bool) -> tuple[Path, str]:
    """Where a SED student's bundle goes under ``out`` and its name, the same from every entry point (``edgekd train
    sed``, ``bench/sed.py``, the shipped ``models/sed10-causal-cnn-kd-int8``)."""
    return out / ("bundle-int8" if int8 else "bundle-fp32"), f"sed{len(labels)}-causal-cnn-kd" + ("-int8" if int8 else "")


def export_scored_bundle(m: nn.Module, d: SedData, root: Path, bundle: Path, name: str, pp: SedPostprocessConfig) -> dict[str, Any]:
    """Export ``m`` with its tuned post-processing and score the bundle's own streaming events on the test split
    (what ``edgekd eval BUNDLE --sed-annotations`` does)."""
    from edgekd.eval.sed import evaluate_sed_bundle
    from edgekd.export.sed import export_sed
    from edgekd.runtime.detector import load_model
    from edgekd.runtime.wav import load_audio

    golden = load_audio(root / "audio" / "test" / d.test.files[0], 16000)
    man = export_sed(m, d.labels, bundle, name=name, arch="sed-causal-cnn", postprocess=pp, golden_audio=golden)
    rt = evaluate_sed_bundle(load_model(bundle), root / "test.tsv", root / "audio" / "test")
    return {"onnx_bytes": (bundle / "model.onnx").stat().st_size, "bundle": str(bundle), "quantization": man.quantization, "runtime": _scores(rt)}


def run_sed(data: Path, out: Path, recipe: SedRecipe, say: Callable[[str], None] = print) -> dict[str, Any]:
    """``edgekd train sed``: train (or reuse) the models under ``out``, tune and score each, export the students as
    ``out/bundle-fp32`` and ``out/bundle-int8``, write ``out/report.json``; returns the report."""
    from dataclasses import asdict

    from edgekd.bench.machine import provenance
    from edgekd.core.fsutil import write_json

    d = load_sed_data(data)
    models = train_sed_models(d, out, recipe, say=say)
    report: dict[str, Any] = {"data": str(data), "recipe": asdict(recipe), "transfer_soundscapes": len(d.transfer), "models": {},
                              "provenance": provenance(f"event/segment F1 and PSDS1 on the test soundscapes of {data}")}
    for name, m in models.items():
        say(f"scoring {name} (post-processing tuned on validation)")
        pp, report["models"][name] = score_sed_model(m, d)
        if name != "teacher":
            bundle, bundle_name = sed_bundle(out, d.labels, int8=name == "student_qat")
            report["models"][name].update(export_scored_bundle(m, d, data, bundle, bundle_name, pp))
    write_json(out / "report.json", report)
    return report
