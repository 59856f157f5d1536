"""KWS training runs as the CLI starts them: features on every rank (rank 0 builds the cache first), one run, a
summary on rank 0; unchanged under torchrun (DDP)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.config import TrainConfig
    from edgekd.train.dist import DistContext
    from edgekd.train.loop import Resume
    from edgekd.train.pipeline import KwsData

__all__ = ["KwsRun", "train_teacher_run", "train_student_run", "train_qat_run", "resume_state", "summary_line"]

Say = Callable[[str], None]


@dataclass
class KwsRun:
    """Where a run reads and writes: the data folder, its augmented views, the caches, the checkpoint, resume state."""

    data: Path
    out: Path
    views: int = 3
    rooms: bool = True
    cache_dir: Path = Path(".edgekd-cache")
    resume: bool = False
    save_every: int = 0
    say: Say = print

    def load(self, d: DistContext) -> KwsData:
        """Features on every rank; rank 0 builds (or reads) the cache first, then the others read it."""
        from edgekd.train.pipeline import load_kws_data

        with d.main_first():
            return load_kws_data(self.data, views=self.views, seed=0, cache_dir=self.cache_dir, progress=d.is_main, rooms=self.rooms)


def resume_state(run: KwsRun) -> Resume:
    """The run's OUT.state (saved every ``save_every`` steps and at each epoch's end), continued with ``resume``."""
    from edgekd.train.loop import Resume

    path = run.out.with_name(run.out.name + ".state")
    if path.is_file() and not run.resume:
        run.say(f"{path} holds an interrupted run; starting over (pass --resume to continue it)")
    elif run.resume and not path.is_file():
        run.say(f"--resume: no {path}; starting from step 0")
    return Resume(path, every=max(0, run.save_every), resume=run.resume)


def summary_line(ckpt_path: Path, metrics: dict[str, Any]) -> str:
    return (f"saved {ckpt_path}: val {metrics['val_accuracy']:.4f}, test {metrics['test_accuracy_torch']:.4f}, "
            f"{metrics['params']} params, {metrics['macs_per_inference'] / 1e6:.2f} M MACs, {metrics['train_seconds']:.0f} s")


def _on_ranks(run: KwsRun, body: Callable[[DistContext], Checkpoint], summary: Callable[[Checkpoint], str]) -> None:
    """Join the process group (a no-op outside torchrun), run, summarise on rank 0, leave."""
    from edgekd.train.dist import DistContext

    d = DistContext.from_env()
    try:
        ck = body(d)
        if d.is_main:
            run.say(summary(ck))
    finally:
        d.close()


def train_student_run(run: KwsRun, cfg: TrainConfig, **kw: Any) -> None:
    """A log-mel model (a teacher from scratch, or a student with or without teachers): ``train_kws`` on the run's data."""
    from edgekd.train.pipeline import train_kws

    _on_ranks(run, lambda d: train_kws(run.load(d), run.out, cfg, cache_dir=run.cache_dir, dist=d, state=resume_state(run),
                                       progress=d.is_main, **kw),
              lambda ck: summary_line(run.out, ck.metrics))


def train_teacher_run(run: KwsRun, cfg: TrainConfig, *, backbone: str = "none", folds: int = 2, hidden: int = 256) -> None:
    """A teacher: ``cfg.arch`` from scratch on log-mels, or (``backbone="speech-embedding"``) a head on the frozen
    speech embedding of the same views, with ``folds`` cross-fitting heads."""
    if backbone == "none":
        train_student_run(run, cfg)
        return
    from edgekd.train.teachers.embedding_teacher import train_embedding_teacher

    def body(d: DistContext) -> Checkpoint:
        kd = run.load(d)
        return train_embedding_teacher(kd.train, kd.validation, kd.test, run.out, cfg, folds=folds, hidden=hidden, cache_dir=run.cache_dir,
                                       progress=d.is_main, dist=d, provenance={"data": str(run.data), "views": run.views, "rooms": run.rooms})

    _on_ranks(run, body, lambda ck: summary_line(run.out, ck.metrics))


def train_qat_run(run: KwsRun, checkpoint: Path, **kw: Any) -> None:
    """Quantization-aware fine-tuning of a float student (``train_qat``), distilling on from its teachers if given."""
    from edgekd.train.pipeline import train_qat

    def summary(c: Checkpoint) -> str:
        return (f"saved {run.out}: QAT val {c.metrics['val_accuracy']:.4f}, test {c.metrics['test_accuracy_torch']:.4f} "
                f"(float test {c.metrics.get('float_test_accuracy_torch') or float('nan'):.4f})")

    _on_ranks(run, lambda d: train_qat(run.load(d), checkpoint, run.out, cache_dir=run.cache_dir, dist=d, state=resume_state(run),
                                       progress=d.is_main, **kw), summary)
