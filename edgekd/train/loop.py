"""The one training loop of every task (KWS, wake words, SED; teachers and students): AdamW + one-cycle LR over a
fixed number of global batches, the best validation epoch kept, DDP under torchrun and resumable state.

What differs between tasks is an ``Objective`` (``train.kws_objective``: feature windows with SpecAugment and KD on
cached logits; ``train.sed``: random crops of soundscapes with the frame-level KD loss): how it builds its model, draws
and scores a batch, and validates an epoch. The loop owns everything else: seeds, optimizer and schedule, the
global-batch sharding over ranks, the epoch permutation, best-epoch selection, progress, and the saved state.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from edgekd.core.errors import ConfigError
from edgekd.core.fsutil import atomic_write
from edgekd.train.config import OPTION_BOUNDS
from edgekd.train.dist import DistContext

__all__ = ["Schedule", "Objective", "Resume", "fit", "predict_logits", "accuracy"]

STATE_FORMAT = "edgekd-train-state-2"


@dataclass(frozen=True)
class Schedule:
    """How long and how fast: ``epochs`` over ``rows // batch_size`` global batches each; with ``ema`` > 0 the
    weights validated, kept and returned are their exponential moving average over steps (a running ensemble of the
    late iterates; its decay ramps up as ``(1 + step) / (10 + step)`` until it reaches ``ema``)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int = 0
    threads: int = 2
    ema: float = 0.0  # decay of an exponential moving average of the weights, validated and kept instead of them (0: off)


class Objective(Protocol):
    """What one task trains: its model, its rows, the loss of a batch and the validation of an epoch."""

    title: str  # the progress bar's
    rows: int  # rows per epoch (clips, windows or soundscapes)

    def setup(self, model: nn.Module | None, rng: np.random.Generator, d: DistContext) -> nn.Module:
        """The model on ``d.device`` (``model``, or a fresh one); called once, after seeding, before the optimizer."""
        ...

    def extra_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters outside the model (a feature-distillation projection), optimized with it."""
        ...

    def loss(self, net: nn.Module, rows: np.ndarray, rng: np.random.Generator, d: DistContext) -> torch.Tensor:
        """The loss of this rank's share of the global batch ``rows`` (random draws from ``rng`` in a fixed order)."""
        ...

    def after_backward(self, d: DistContext) -> None: ...

    def validate(self, model: nn.Module, d: DistContext) -> dict[str, float]:
        """The epoch's validation metrics; the first one picks the best epoch (higher is better)."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a saved state to be resumed (the loop adds its schedule)."""
        ...

    def state(self) -> dict[str, Any]: ...

    def restore(self, saved: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass
class Resume:
    """Where training state goes: ``path`` is written atomically every ``every`` steps and at each epoch's end;
    with ``resume`` an existing state is continued (same step count, same random streams)."""

    path: Path
    every: int = 0
    resume: bool = False


@torch.no_grad()
def predict_logits(model: nn.Module, x: Any, batch_size: int = 512, device: torch.device | None = None) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, x.shape[0], batch_size):
        xb = torch.from_numpy(np.asarray(x[i : i + batch_size], dtype=np.float32))
        out.append(model(xb if device is None else xb.to(device)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def accuracy(model: nn.Module, fs: Any, dist: DistContext | None = None) -> float:
    """Top-1 accuracy on a ``FeatureSet``; under torchrun each rank scores rows ``rank::world`` and the counts are summed."""
    if not len(fs):
        return float("nan")
    d = dist or DistContext()
    rows = np.arange(len(fs))[d.rank :: d.world_size]
    pred = predict_logits(model, fs.x[rows], device=d.device).argmax(-1) if rows.size else np.zeros(0, dtype=np.int64)
    correct, n = d.all_sum([float(np.sum(pred == fs.y[rows])), float(rows.size)])
    return correct / n


@dataclass
class _Run:
    """Everything a training run changes as it goes (what a saved state restores), with the objects that change it."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    rng: np.random.Generator
    steps_per_epoch: int
    total: int
    step: int = 0
    run_loss: float = 0.0
    perm: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    history: dict[str, Any] = field(default_factory=lambda: {"epochs": [], "train_examples_seen": 0})
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    ema: nn.Module | None = None  # the averaged weights (Schedule.ema > 0)

    @property
    def kept(self) -> nn.Module:
        """The weights that are validated and returned: the average when there is one."""
        return self.ema if self.ema is not None else self.model

    def state(self, fingerprint: dict[str, Any], objective: Objective) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT, "fingerprint": fingerprint, "step": self.step, "run_loss": self.run_loss,
            "perm": torch.from_numpy(self.perm), "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "objective": objective.state(), "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "history": self.history, "best": self.best,
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def restore(self, path: Path, fingerprint: dict[str, Any], objective: Objective) -> None:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("format") != STATE_FORMAT or saved.get("fingerprint") != fingerprint:
            raise ConfigError(f"{path} was saved by a different training run ({saved.get('fingerprint')}); "
                              f"delete it or run without --resume")
        self.model.load_state_dict(saved["model"])
        objective.restore(saved["objective"])
        self.opt.load_state_dict(saved["optimizer"])
        self.sched.load_state_dict(saved["scheduler"])
        self.rng.bit_generator.state = saved["numpy_rng"]
        torch.set_rng_state(saved["torch_rng"])
        self.step, self.run_loss, self.perm, self.history = saved["step"], saved["run_loss"], saved["perm"].numpy(), saved["history"]
        self.best = saved["best"]
        if self.ema is not None:
            self.ema.load_state_dict(saved["ema"])
        self.history.setdefault("resumed_at_steps", []).append(self.step)


def _prepare(obj: Objective, sch: Schedule, model: nn.Module | None, d: DistContext) -> _Run:
    """Seeds, the model, optimizer and one-cycle schedule, in a fixed order."""
    torch.manual_seed(sch.seed)
    torch.set_num_threads(max(1, sch.threads))
    rng = np.random.default_rng(sch.seed)
    model = obj.setup(model, rng, d)
    steps_per_epoch = max(1, obj.rows // sch.batch_size)
    total = steps_per_epoch * sch.epochs
    opt = torch.optim.AdamW(list(model.parameters()) + obj.extra_parameters(), lr=sch.lr, weight_decay=sch.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=sch.lr, total_steps=total, pct_start=0.15)
    if not OPTION_BOUNDS["ema"].ok(sch.ema):
        raise ConfigError(f"the weight-average decay must be in {OPTION_BOUNDS['ema']}, got {sch.ema}")
    ema = copy.deepcopy(model) if sch.ema > 0 else None
    return _Run(model, opt, sched, rng, steps_per_epoch, total, ema=ema)


@torch.no_grad()
def _average(run: _Run, decay: float) -> None:
    """Move the averaged weights (and float buffers: BatchNorm statistics) towards the model's; copy the others."""
    assert run.ema is not None
    d = min(decay, (1 + run.step) / (10 + run.step))
    for e, p in zip(run.ema.state_dict().values(), run.model.state_dict().values(), strict=True):
        if e.dtype.is_floating_point:
            e.mul_(d).add_(p, alpha=1 - d)
        else:
            e.copy_(p)


def _train_step(run: _Run, net: nn.Module, obj: Objective, sch: Schedule, d: DistContext) -> None:
    """One optimizer step on this rank's share of the next global batch (a new permutation at each epoch's start)."""
    s = run.step % run.steps_per_epoch
    if s == 0:
        run.perm = run.rng.permutation(obj.rows)
        run.run_loss = 0.0
    net.train()
    rows = run.perm[s * sch.batch_size : (s + 1) * sch.batch_size]
    loss = obj.loss(net, rows, run.rng, d)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    obj.after_backward(d)
    run.opt.step()
    run.sched.step()
    if run.ema is not None:
        _average(run, sch.ema)
    (step_loss,) = d.all_sum([loss.item()])
    run.run_loss += step_loss / d.world_size
    run.history["train_examples_seen"] += int(rows.shape[0])
    run.step += 1


def _end_epoch(run: _Run, obj: Objective, d: DistContext) -> dict[str, float]:
    """Validation metrics of the epoch just ended; the best epoch's weights are kept (ties and NaN: the later one)."""
    epoch = run.step // run.steps_per_epoch
    metrics = obj.validate(run.kept, d)
    score = next(iter(metrics.values()))
    run.history["epochs"].append({"epoch": epoch, "loss": run.run_loss / run.steps_per_epoch, **metrics})
    if run.best is None or not (score <= run.best[0]):
        run.best = (score, copy.deepcopy({k: v.detach().cpu().contiguous() for k, v in run.kept.state_dict().items()}))
    return metrics


def fit(
    obj: Objective,
    sch: Schedule,
    *,
    model: nn.Module | None = None,
    progress: bool = True,
    before_epoch: Callable[[nn.Module, int], None] | None = None,
    on_epoch: Callable[[int, float, dict[str, float]], None] | None = None,
    dist: DistContext | None = None,
    state: Resume | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``obj``'s model (or go on training ``model``) for ``sch``; return the best validation epoch's weights
    and the history (per-epoch loss and metrics, ``best_<metric>``, steps, seconds).

    ``before_epoch(model, epoch)`` runs before every step (QAT freezes observers late with it);
    ``on_epoch(epoch, loss, metrics)`` after each validation; ``dist``: torchrun context (DDP, global-batch sharding,
    reduced metrics, rank-0 progress and state); ``state``: resumable training state (model, optimizer, scheduler,
    sampler position, every random stream)."""
    d = dist or DistContext()
    if sch.batch_size % d.world_size:
        raise ConfigError(f"the batch size {sch.batch_size} must split evenly over {d.world_size} processes")
    run = _prepare(obj, sch, model, d)
    fingerprint = {**obj.fingerprint(), "rows": obj.rows, "batch_size": sch.batch_size, "epochs": sch.epochs, "seed": sch.seed,
                   "total_steps": run.total, **({"ema": sch.ema} if sch.ema else {})}
    if state is not None and state.resume and state.path.is_file():
        run.restore(state.path, fingerprint, obj)
    net: nn.Module = run.model
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(run.model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    bar = _progress_bar(obj, run, d) if progress and d.is_main else None
    save_to = state.path if state is not None and d.is_main else None
    every = state.every if state is not None else 0
    t0 = time.time()
    while run.step < run.total:
        epoch, s = divmod(run.step, run.steps_per_epoch)
        if before_epoch is not None:
            before_epoch(run.model, epoch)
        _train_step(run, net, obj, sch, d)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{run.run_loss / (s + 1):.3f}")
        if run.step % run.steps_per_epoch == 0:
            metrics = _end_epoch(run, obj, d)
            loss = run.run_loss / run.steps_per_epoch
            if bar is not None:
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}", val=f"{next(iter(metrics.values())):.4f}")
            if on_epoch is not None and d.is_main:
                on_epoch(epoch + 1, loss, metrics)
            if save_to is not None:
                _save_state(save_to, run.state(fingerprint, obj))
        elif save_to is not None and every > 0 and run.step % every == 0:
            _save_state(save_to, run.state(fingerprint, obj))
    if bar is not None:
        bar.close()
    obj.close()
    return _finish(run, time.time() - t0)


def _progress_bar(obj: Objective, run: _Run, d: DistContext) -> Any:
    from edgekd.core.progress import Progress

    return Progress(obj.title + (f" x{d.world_size}" if d.enabled else ""), run.total, "step", initial=run.step)


def _finish(run: _Run, seconds: float) -> tuple[nn.Module, dict[str, Any]]:
    """The best epoch's weights on the CPU, in eval mode, and the history with its summary."""
    model = run.model.cpu().to(memory_format=torch.contiguous_format)
    assert run.best is not None
    model.load_state_dict(run.best[1])
    h = run.history
    first = [k for k in h["epochs"][-1] if k not in ("epoch", "loss")][0]  # the metric that picked the best epoch
    h.update({f"best_{first}": run.best[0], "train_seconds": seconds, "steps": run.step, "final_loss": h["epochs"][-1]["loss"]})
    return model.eval(), h


def _save_state(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(payload, tmp))

