"""``edgekd train``: teacher and student training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.common import friendly_errors, notice

app = typer.Typer(help="Train a teacher, or a student with or without distillation.", no_args_is_help=True)

DataOpt = Annotated[Path, typer.Option("--data", help="Speech Commands-layout folder with split lists.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Checkpoint file to write.")]
EpochsOpt = Annotated[int, typer.Option(help="Passes over the augmented training views.")]
ViewsOpt = Annotated[int, typer.Option(help="Augmented views per training clip (computed once, cached).")]
SeedOpt = Annotated[int, typer.Option(help="Random seed.")]
ThreadsOpt = Annotated[int, typer.Option(help="torch threads.")]
CacheOpt = Annotated[Path, typer.Option(help="Where feature and teacher-logit caches go.")]


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
    arch: Annotated[str, typer.Option(help="Architecture from the registry (see `edgekd models`).")] = "cnn-teacher",
    epochs: EpochsOpt = 5,
    views: ViewsOpt = 3,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-3,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 2,
    cache_dir: CacheOpt = Path(".edgekd-cache"),
) -> None:
    """Train the teacher (label smoothing 0.1, SpecAugment, augmented views)."""
    from edgekd.train.config import TrainConfig
    from edgekd.train.pipeline import load_kws_data, train_kws

    cfg = TrainConfig(arch=arch, epochs=epochs, lr=lr, seed=seed, threads=threads, alpha=0.0, label_smoothing=0.1)
    kd = load_kws_data(data, views=views, seed=0, cache_dir=cache_dir)
    _summary(out, train_kws(kd, out, cfg, cache_dir=cache_dir).metrics)


@app.command("student")
@friendly_errors
def student_cmd(
    data: DataOpt,
    out: OutOpt,
    teacher: Annotated[Optional[Path], typer.Option(help="Teacher checkpoint to distil from (logits cached once).")] = None,
    no_teacher: Annotated[bool, typer.Option("--no-teacher", help="Train the same student on hard labels only (the baseline).")] = False,
    arch: Annotated[str, typer.Option(help="Student architecture: dscnn or bcresnet1.")] = "dscnn",
    alpha: Annotated[float, typer.Option(help="Weight of the distillation term.")] = 0.7,
    temperature: Annotated[float, typer.Option(help="Softmax temperature of the distillation term.")] = 3.0,
    epochs: EpochsOpt = 5,
    views: ViewsOpt = 3,
    subset: Annotated[float, typer.Option(help="Train on this fraction of the training clips.")] = 1.0,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-3,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 2,
    cache_dir: CacheOpt = Path(".edgekd-cache"),
) -> None:
    """Train a student: distilled from --teacher, or --no-teacher for the hard-label baseline."""
    from edgekd.errors import ConfigError
    from edgekd.train.config import TrainConfig
    from edgekd.train.pipeline import load_kws_data, train_kws
    from edgekd.train.students import STUDENTS

    if (teacher is None) == (not no_teacher):
        raise ConfigError("give exactly one of --teacher CKPT or --no-teacher")
    if arch in STUDENTS and STUDENTS[arch].role != "student":
        raise ConfigError(f"{arch} is a teacher architecture; use `edgekd train teacher`")
    cfg = TrainConfig(arch=arch, epochs=epochs, lr=lr, seed=seed, threads=threads,
                      alpha=alpha if teacher is not None else 0.0, temperature=temperature)
    kd = load_kws_data(data, views=views, seed=0, cache_dir=cache_dir)
    _summary(out, train_kws(kd, out, cfg, teacher=teacher, subset=subset, cache_dir=cache_dir).metrics)


@app.command("qat")
@friendly_errors
def qat_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Trained float student checkpoint.")],
    data: DataOpt,
    out: OutOpt,
    teacher: Annotated[Optional[Path], typer.Option(help="Keep distilling from this teacher during QAT (cached logits).")] = None,
    epochs: EpochsOpt = 2,
    lr: Annotated[float, typer.Option(help="Peak learning rate (lower than float training).")] = 5e-4,
    views: ViewsOpt = 3,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 2,
    cache_dir: CacheOpt = Path(".edgekd-cache"),
) -> None:
    """Quantization-aware fine-tuning: BatchNorm folded, int8 per-channel weights, uint8 activations (EMA ranges)."""
    from edgekd.train.pipeline import load_kws_data, train_qat

    kd = load_kws_data(data, views=views, seed=0, cache_dir=cache_dir)
    c = train_qat(kd, checkpoint, out, teacher=teacher, epochs=epochs, lr=lr, seed=seed, threads=threads, cache_dir=cache_dir)
    notice(f"saved {out}: QAT val {c.metrics['val_accuracy']:.4f}, test {c.metrics['test_accuracy_torch']:.4f} "
           f"(float test {c.metrics.get('float_test_accuracy_torch') or float('nan'):.4f})")
