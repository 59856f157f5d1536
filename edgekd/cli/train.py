"""``edgekd train``: teacher and student training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.common import fraction, friendly_errors, nonneg, notice, positive, unit
from edgekd.train.catalog import arch_names

app = typer.Typer(help="Train a teacher, or a student with or without distillation.", no_args_is_help=True)

DataOpt = Annotated[Path, typer.Option("--data", help="Speech Commands-layout folder with split lists.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Checkpoint file to write.")]
EpochsOpt = Annotated[int, typer.Option(min=1, help="Passes over the augmented training views.")]
ViewsOpt = Annotated[int, typer.Option(min=1, max=64, help="Augmented views per training clip (computed once, cached).")]
RoomsOpt = Annotated[bool, typer.Option(help="Training views also go through simulated rooms (cached RIR bank), real background "
                                             "recordings and clipping.")]
SeedOpt = Annotated[int, typer.Option(min=0, help="Random seed.")]
ThreadsOpt = Annotated[int, typer.Option(min=1, max=64, help="torch threads (per process under torchrun).")]
BatchOpt = Annotated[int, typer.Option(min=1, help="Global batch size (split evenly over torchrun processes).")]
CacheOpt = Annotated[Path, typer.Option(help="Where feature and teacher-logit caches go (a shared file system under torchrun).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the interrupted run saved in OUT.state (model, optimizer, "
                                         "scheduler, sampler position, RNG), to the same step count.")]
SaveEveryOpt = Annotated[int, typer.Option(min=0, help="Also save OUT.state every this many steps (it is always saved at each epoch's end).")]
TeacherCacheOpt = Annotated[Optional[Path], typer.Option(help="A teacher-logit cache from `edgekd teacher cache` (checked against "
                                                          "--teacher when both are given).")]


def _check_inputs(**paths: Optional[Path] | list[Path]) -> None:
    """Refuse a named input file that is not there before any data is read (one line)."""
    from edgekd.core.errors import ConfigError

    for name, given in paths.items():
        for path in given if isinstance(given, list) else [given]:
            if path is not None and not path.is_file():
                raise ConfigError(f"--{name.replace('_', '-')} {path}: no such file")


def _state(out: Path, resume: bool, save_every: int):  # type: ignore[no-untyped-def]
    from edgekd.train.loop import Resume

    path = out.with_name(out.name + ".state")
    if path.is_file() and not resume:
        notice(f"{path} holds an interrupted run; starting over (pass --resume to continue it)")
    elif resume and not path.is_file():
        notice(f"--resume: no {path}; starting from step 0")
    return Resume(path, every=max(0, save_every), resume=resume)


def _load(data: Path, views: int, cache_dir: Path, d, rooms: bool = True):  # type: ignore[no-untyped-def]
    """Features on every rank; rank 0 builds (or reads) the cache first, then the others read it."""
    from edgekd.train.pipeline import load_kws_data

    with d.main_first():
        return load_kws_data(data, views=views, seed=0, cache_dir=cache_dir, progress=d.is_main, rooms=rooms)


def _train_kws(data: Path, views: int, cache_dir: Path, out: Path, cfg, resume: bool, save_every: int, rooms: bool = True,  # type: ignore[no-untyped-def]
               **kw) -> None:
    """One training run, unchanged under torchrun: join the process group, train, summarise on rank 0, leave."""
    from edgekd.train.dist import DistContext
    from edgekd.train.pipeline import train_kws

    d = DistContext.from_env()
    try:
        ck = train_kws(_load(data, views, cache_dir, d, rooms), out, cfg, cache_dir=cache_dir, dist=d, state=_state(out, resume, save_every),
                       progress=d.is_main, **kw)
        if d.is_main:
            _summary(out, ck.metrics)
    finally:
        d.close()


def _summary(ckpt_path: Path, metrics: dict) -> None:
    notice(
        f"saved {ckpt_path}: val {metrics['val_accuracy']:.4f}, test {metrics['test_accuracy_torch']:.4f}, "
        f"{metrics['params']} params, {metrics['macs_per_inference'] / 1e6:.2f} M MACs, {metrics['train_seconds']:.0f} s"
    )


@app.command("teacher")
@friendly_errors
def teacher_cmd(
    data: DataOpt,
    out: OutOpt,
    arch: Annotated[str, typer.Option(help=f"Teacher architecture on log-mels: {', '.join(a for a in arch_names('teacher') if a != 'speech-embedding')} "
                                           "(see `edgekd models`).")] = "cnn-teacher",
    backbone: Annotated[str, typer.Option(help="none: train --arch from scratch on log-mels; speech-embedding: an MLP head on the "
                                               "frozen speech embedding (needs the oww extra), with --folds cross-fitting heads.")] = "none",
    folds: Annotated[int, typer.Option(min=0, max=10, help="speech-embedding: extra heads, each trained without one fold of the "
                                                         "clips, that label the clips they never saw for students (0 = off).")] = 2,
    hidden: Annotated[int, typer.Option(min=8, max=4096, help="speech-embedding: hidden units of the head.")] = 256,
    epochs: EpochsOpt = 5,
    views: ViewsOpt = 3,
    rooms: RoomsOpt = True,
    lr: Annotated[float, typer.Option(callback=positive, help="Peak learning rate.")] = 3e-3,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 2,
    cache_dir: CacheOpt = Path(".edgekd-cache"),
    batch_size: BatchOpt = 128,
    resume: ResumeOpt = False,
    save_every: SaveEveryOpt = 0,
) -> None:
    """Train the teacher (label smoothing 0.1, augmented views): --arch from scratch on log-mels (SpecAugment), or
    --backbone speech-embedding, a head on a frozen embedding pretrained on real speech, trained on the embedding
    of the same augmented views the students hear. Runs unchanged under torchrun (DDP)."""
    from edgekd.core.errors import ConfigError
    from edgekd.train.config import TrainConfig

    if backbone not in ("none", "speech-embedding"):
        raise ConfigError(f"--backbone {backbone!r}: choose none or speech-embedding")
    if arch == "speech-embedding":
        backbone = "speech-embedding"
    cfg = TrainConfig(arch=arch, epochs=epochs, lr=lr, seed=seed, threads=threads, alpha=0.0, label_smoothing=0.1, batch_size=batch_size)
    if backbone == "none":
        _train_kws(data, views, cache_dir, out, cfg, resume, save_every, rooms)
        return
    if folds == 1:
        raise ConfigError("--folds must be 0 (no cross-fitting) or at least 2")
    if resume:
        raise ConfigError("--resume is for long runs; the speech-embedding head trains in minutes: run it again without --resume")
    from edgekd.train.dist import DistContext
    from edgekd.train.teachers.embedding_teacher import train_embedding_teacher

    d = DistContext.from_env()
    try:
        kd = _load(data, views, cache_dir, d, rooms)
        ck = train_embedding_teacher(kd.train, kd.validation, kd.test, out, cfg, folds=folds, hidden=hidden, cache_dir=cache_dir,
                                     progress=d.is_main, dist=d, provenance={"data": str(data), "views": views, "rooms": rooms})
        if d.is_main:
            _summary(out, ck.metrics)
    finally:
        d.close()


@app.command("student")
@friendly_errors
def student_cmd(
    data: DataOpt,
    out: OutOpt,
    teacher: Annotated[Optional[list[Path]], typer.Option(metavar="CKPT", help="Teacher checkpoint to distil from (logits cached once). Repeat it "
                                                              "for an ensemble: the students learn the mean of the teachers' logits.")] = None,
    teacher_cache: TeacherCacheOpt = None,
    no_teacher: Annotated[bool, typer.Option("--no-teacher", help="Train the same student on hard labels only (the baseline).")] = False,
    arch: Annotated[str, typer.Option(help=f"Student architecture: {', '.join(arch_names('student'))} (see `edgekd models`).")] = "dscnn",
    alpha: Annotated[float, typer.Option(callback=unit, help="Weight of the distillation term.")] = 0.7,
    temperature: Annotated[float, typer.Option(callback=positive, help="Softmax temperature of the distillation term.")] = 3.0,
    feature_kd: Annotated[float, typer.Option(callback=nonneg, help="Weight of feature distillation: a projection of the student's "
                                                                    "pooled features regressed onto the speech embedding of the same "
                                                                    "view (needs the oww extra; 0 = off).")] = 0.0,
    transfer: Annotated[Optional[Path], typer.Option(help="A transfer set from `edgekd data transfer`: unlabelled windows the "
                                                          "teacher labels, learnt with the distillation term only.")] = None,
    epochs: EpochsOpt = 5,
    views: ViewsOpt = 3,
    rooms: RoomsOpt = True,
    subset: Annotated[float, typer.Option(callback=fraction, help="Train on this fraction of the training clips.")] = 1.0,
    lr: Annotated[float, typer.Option(callback=positive, help="Peak learning rate.")] = 3e-3,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 2,
    cache_dir: CacheOpt = Path(".edgekd-cache"),
    batch_size: BatchOpt = 128,
    resume: ResumeOpt = False,
    save_every: SaveEveryOpt = 0,
) -> None:
    """Train a student: distilled from --teacher (or a prebuilt --teacher-cache), or --no-teacher for the hard-label
    baseline. Runs unchanged under torchrun (DDP; same global batch, so the same steps as one process)."""
    from edgekd.core.errors import ConfigError
    from edgekd.train.catalog import CATALOG
    from edgekd.train.config import TrainConfig

    _check_inputs(teacher=teacher)
    distil = bool(teacher) or teacher_cache is not None
    if distil == no_teacher:
        raise ConfigError("give --teacher CKPT (and/or --teacher-cache DIR) or --no-teacher")
    if arch in CATALOG and CATALOG[arch].role != "student":
        raise ConfigError(f"{arch} is a teacher architecture; use `edgekd train teacher`")
    cfg = TrainConfig(arch=arch, epochs=epochs, lr=lr, seed=seed, threads=threads, batch_size=batch_size,
                      alpha=alpha if distil else 0.0, temperature=temperature, feature_kd=feature_kd)
    if transfer is not None and not (transfer / "transfer_meta.json").is_file():
        raise ConfigError(f"--transfer {transfer}: not a transfer set (no transfer_meta.json); make one with `edgekd data transfer`")
    _train_kws(data, views, cache_dir, out, cfg, resume, save_every, rooms, teacher=teacher, teacher_cache=teacher_cache, subset=subset,
               transfer=transfer)


@app.command("qat")
@friendly_errors
def qat_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Trained float student checkpoint.")],
    data: DataOpt,
    out: OutOpt,
    teacher: Annotated[Optional[list[Path]], typer.Option(metavar="CKPT", help="Keep distilling from this teacher during QAT (cached logits); "
                                                              "repeat it for an ensemble, as in `train student`.")] = None,
    teacher_cache: TeacherCacheOpt = None,
    epochs: EpochsOpt = 2,
    lr: Annotated[float, typer.Option(callback=positive, help="Peak learning rate (lower than float training).")] = 5e-4,
    views: ViewsOpt = 3,
    rooms: RoomsOpt = True,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 2,
    cache_dir: CacheOpt = Path(".edgekd-cache"),
    resume: ResumeOpt = False,
    save_every: SaveEveryOpt = 0,
) -> None:
    """Quantization-aware fine-tuning: BatchNorm folded, int8 per-channel weights, uint8 activations (EMA ranges).
    Runs unchanged under torchrun."""
    from edgekd.train.dist import DistContext
    from edgekd.train.pipeline import train_qat

    _check_inputs(checkpoint=checkpoint, teacher=teacher)
    d = DistContext.from_env()
    try:
        c = train_qat(_load(data, views, cache_dir, d, rooms), checkpoint, out, teacher=teacher, teacher_cache=teacher_cache, epochs=epochs, lr=lr,
                      seed=seed, threads=threads, cache_dir=cache_dir, dist=d, state=_state(out, resume, save_every), progress=d.is_main)
    finally:
        d.close()
    if not d.is_main:
        return
    notice(f"saved {out}: QAT val {c.metrics['val_accuracy']:.4f}, test {c.metrics['test_accuracy_torch']:.4f} "
           f"(float test {c.metrics.get('float_test_accuracy_torch') or float('nan'):.4f})")


@app.command("sed")
@friendly_errors
def sed_cmd(
    data: Annotated[Path, typer.Argument(help="Soundscapes from `edgekd data synth-sed` (audio/<split>/ + <split>.tsv; audio/transfer/ "
                                              "is used for distillation when present).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the models, bundle-int8/, bundle-fp32/ and report.json.")],
    teacher_epochs: Annotated[int, typer.Option(min=1, help="Teacher (sed-crnn) epochs.")] = 20,
    student_epochs: Annotated[int, typer.Option(min=1, help="Distilled student (sed-causal-cnn) epochs.")] = 60,
    qat_epochs: Annotated[int, typer.Option(min=1, help="Quantization-aware fine-tuning epochs.")] = 6,
    alpha: Annotated[float, typer.Option(callback=unit, help="Weight of the distillation term on labelled soundscapes (transfer ones use it alone).")] = 0.5,
    temperature: Annotated[float, typer.Option(callback=positive, help="Sigmoid temperature of the distillation term.")] = 1.0,
    threads: ThreadsOpt = 2,
) -> None:
    """Sound-event detection end to end: train the sed-crnn teacher, distil the causal sed-causal-cnn student
    (frame-level loss; transfer soundscapes labelled by the teacher alone), fine-tune it with QAT, tune each model's
    post-processing on the validation split, export OUT/bundle-int8 and OUT/bundle-fp32 (task sed) and score the
    test split (event/segment F1, PSDS1 with the psds extra) into OUT/report.json. Models already under OUT are
    reused: delete one to retrain it."""
    from dataclasses import asdict

    from edgekd.bench.machine import provenance
    from edgekd.cli.common import write_json
    from edgekd.core.errors import ConfigError
    from edgekd.recipes.sed import SedRecipe, export_scored_bundle, load_sed_data, score_sed_model, train_sed_models

    if min(teacher_epochs, student_epochs, qat_epochs) < 1 or not 0.0 <= alpha <= 1.0 or temperature <= 0:
        raise ConfigError("epochs must be >= 1, --alpha within [0, 1] and --temperature > 0")
    d = load_sed_data(data)
    recipe = SedRecipe(teacher_epochs=teacher_epochs, student_epochs=student_epochs, qat_epochs=qat_epochs, alpha=alpha,
                       temperature=temperature, threads=threads)
    models = train_sed_models(d, out, recipe, say=notice)
    report: dict = {"data": str(data), "recipe": asdict(recipe), "transfer_soundscapes": len(d.transfer), "models": {},  # type: ignore[type-arg]
                    "provenance": provenance(f"event/segment F1 and PSDS1 on the test soundscapes of {data}")}
    for name, m in models.items():
        notice(f"scoring {name} (post-processing tuned on validation)")
        pp, report["models"][name] = score_sed_model(m, d)
        if name != "teacher":
            bundle = out / ("bundle-int8" if name == "student_qat" else "bundle-fp32")
            report["models"][name].update(export_scored_bundle(m, d, data, bundle, f"sed-{bundle.name}", pp))
    write_json(out / "report.json", report)
    for name, r in report["models"].items():
        notice(f"{name}: event-F1 {r['event_f1']:.3f}, segment-F1 {r['segment_f1']:.3f}, {r['params']:,} params"
               + (f", bundle {r['bundle']} ({r['onnx_bytes']:,} B ONNX)" if "bundle" in r else ""))
    notice(f"-> {out / 'report.json'}")


@app.command("wakeword")
@friendly_errors
def wakeword_cmd(
    data: Annotated[Path, typer.Argument(help="Material from `edgekd data synth-wakeword` (clips/ and transfer*.wav: running speech "
                                              "the teacher labels).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the models, bundle-distilled/, bundle-distilled-int8/ and report.json.")],
    teacher: Annotated[str, typer.Option(help="Teacher that scores raw audio: oww:NAME (openWakeWord 0.4.0 head, the oww extra).")],
    label: Annotated[Optional[str], typer.Option(help="The phrase's clip folder (default: the phrase in clips/synth_meta.json).")] = None,
    arch: Annotated[str, typer.Option(help=f"Student architecture: {', '.join(arch_names('student'))}.")] = "dscnn",
    epochs: EpochsOpt = 12,
    qat_epochs: Annotated[int, typer.Option(min=0, help="QAT int8 fine-tuning epochs on the same teacher targets (0: no int8 bundle).")] = 2,
    alpha: Annotated[float, typer.Option(callback=unit, help="Weight of the teacher's soft targets on labelled clips (transfer windows: alone).")] = 0.7,
    views: ViewsOpt = 2,
    baseline: Annotated[bool, typer.Option("--baseline", help="Also train the student on hard labels only (bundle-no_teacher/).")] = False,
    stride_ms: Annotated[int, typer.Option(min=10, help="Run the student every this many ms (80: the teacher's hop; 160 halves the CPU).")] = 80,
    threads: ThreadsOpt = 2,
) -> None:
    """Wake word end to end: the teacher scores every training clip and 1 s windows of the transfer speech, a
    student learns from those scores (soft-target BCE) and the hard labels, is fine-tuned with QAT int8 on the same
    targets, and both are exported as bundles (one score every --stride-ms; 80 is the teacher's hop). Score them with
    `edgekd eval-stream OUT/bundle-distilled --positives DATA/eval/positives ...`. Models already under OUT are
    reused: delete one to retrain it. A student of an openWakeWord head inherits its CC BY-NC-SA 4.0 licence."""
    from dataclasses import asdict

    from edgekd.bench.machine import provenance
    from edgekd.cli.common import write_json
    from edgekd.core.errors import ConfigError, DataError
    from edgekd.recipes.wakeword import WakewordRecipe, phrase_label, teacher_targets, train_wakeword_students, wakeword_labels
    from edgekd.runtime.wav import load_audio
    from edgekd.train.onnx_teacher import OnnxTeacher
    from edgekd.train.pipeline import load_kws_data

    if epochs < 1 or qat_epochs < 0 or views < 1 or not 0.0 <= alpha <= 1.0 or stride_ms < 10 or stride_ms % 10:
        raise ConfigError("--epochs and --views must be >= 1, --qat-epochs >= 0, --alpha within [0, 1] and --stride-ms a multiple of 10")
    clips = data / "clips"
    if not clips.is_dir():
        raise DataError(f"{clips}: missing; make the material with `edgekd data synth-wakeword {data}`")
    label = label or phrase_label(clips)
    t = OnnxTeacher(teacher)  # a bad spec or a missing extra fails here, before any feature is computed
    transfer_files = sorted(data.glob("transfer*.wav"))
    if not transfer_files:
        notice(f"{data}: no transfer*.wav; the student learns from the teacher's scores of the clips alone")
    kd = load_kws_data(clips, labels=wakeword_labels(label), views=views, cache_dir=out / "cache", workers=threads)
    targets = teacher_targets(teacher, kd, [load_audio(f, 16000) for f in transfer_files], out / "teacher-targets.npz", workers=threads)
    recipe = WakewordRecipe(arch=arch, epochs=epochs, qat_epochs=qat_epochs, alpha=alpha, views=views, threads=threads, stride_ms=stride_ms,
                            smooth_ms=max(160, stride_ms))
    bundles = train_wakeword_students(kd, targets, out, recipe, teacher_spec=teacher, teacher_identity=t.identity, baseline=baseline,
                                      name_prefix=label.replace("_", "-"))
    report = {"data": str(data), "label": label, "teacher": teacher, "teacher_sha256": t.identity, "recipe": asdict(recipe),
              "transfer_files": [f.name for f in transfer_files], "teacher_on_training": targets.summary(kd.train),
              "bundles": {k: str(v) for k, v in bundles.items()}, "provenance": provenance(f"wake-word students of {label!r} distilled from {teacher}")}
    write_json(out / "report.json", report)
    for name, b in bundles.items():
        notice(f"{name}: {b}")
    if teacher.startswith("oww:"):
        notice("these students are distilled from a CC BY-NC-SA 4.0 openWakeWord head: keep them out of anything you redistribute")
    notice(f"-> {out / 'report.json'}")
