"""The training loop shared by teacher and students: AdamW + one-cycle LR, SpecAugment, KD on cached logits;
DDP under torchrun and resumable state."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgekd.core.errors import ConfigError
from edgekd.core.fsutil import atomic_write
from edgekd.train.config import TrainConfig
from edgekd.train.dist import DistContext, shard_rows
from edgekd.train.distill import kd_loss
from edgekd.train.features import FeatureSet
from edgekd.train.models import build_model

__all__ = ["train_model", "predict_logits", "accuracy", "Resume"]


def _masked(x: torch.Tensor, fill: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    tmask, fmask = masks
    x = torch.where(tmask[:, :, None], fill[None, None, :], x)
    return torch.where(fmask[:, None, :], fill[None, None, :], x)


def _specaugment_masks(b: int, t: int, m: int, cfg: TrainConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Time and frequency masks for a whole (global) batch, drawn from ``gen`` in a fixed order."""
    tmask = torch.zeros(b, t, dtype=torch.bool)
    fmask = torch.zeros(b, m, dtype=torch.bool)
    for _ in range(cfg.time_masks):
        w = torch.randint(0, cfg.time_mask_frames + 1, (b,), generator=gen)
        s = (torch.rand(b, generator=gen) * (t - w)).long()
        r = torch.arange(t)[None, :]
        tmask |= (r >= s[:, None]) & (r < (s + w)[:, None])
    for _ in range(cfg.freq_masks):
        w = torch.randint(0, cfg.freq_mask_bands + 1, (b,), generator=gen)
        s = (torch.rand(b, generator=gen) * (m - w)).long()
        r = torch.arange(m)[None, :]
        fmask |= (r >= s[:, None]) & (r < (s + w)[:, None])
    return tmask, fmask


@torch.no_grad()
def predict_logits(model: nn.Module, x: Any, batch_size: int = 512, device: torch.device | None = None) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, x.shape[0], batch_size):
        xb = torch.from_numpy(np.asarray(x[i : i + batch_size], dtype=np.float32))
        out.append(model(xb if device is None else xb.to(device)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def accuracy(model: nn.Module, fs: FeatureSet, dist: DistContext | None = None) -> float:
    """Top-1 accuracy; under torchrun each rank scores rows ``rank::world`` and the counts are summed."""
    if not len(fs):
        return float("nan")
    d = dist or DistContext()
    rows = np.arange(len(fs))[d.rank :: d.world_size]
    pred = predict_logits(model, fs.x[rows], device=d.device).argmax(-1) if rows.size else np.zeros(0, dtype=np.int64)
    correct, n = d.all_sum([float(np.sum(pred == fs.y[rows])), float(rows.size)])
    return correct / n


STATE_FORMAT = "edgekd-train-state-1"


@dataclass
class Resume:
    """Where training state goes: ``path`` is written atomically every ``every`` steps and at each epoch's end;
    with ``resume`` an existing state is continued (same step count, same random streams)."""

    path: Path
    every: int = 0
    resume: bool = False


def _fingerprint(cfg: TrainConfig, train: FeatureSet, total: int) -> dict[str, Any]:
    return {"arch": cfg.arch, "data": train.key, "rows": len(train), "batch_size": cfg.batch_size, "epochs": cfg.epochs,
            "seed": cfg.seed, "total_steps": total, "alpha": cfg.alpha, "feature_kd": cfg.feature_kd}


class FeatureDistiller:
    """Feature distillation: a linear projection of the student's pooled features (the input of its last Linear
    layer, caught by a forward hook) regressed onto per-row teacher features. Training only: the projection is
    not part of the student, which exports unchanged."""

    def __init__(self, model: nn.Module, dim: int, device: torch.device) -> None:
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        self.proj = nn.Linear(last.in_features, dim).to(device)
        self._h: torch.Tensor | None = None
        self._hook = last.register_forward_hook(self._catch)

    def _catch(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self._h = inputs[0]

    def loss(self, targets: torch.Tensor) -> torch.Tensor:
        assert self._h is not None, "the student ran no forward pass"
        return nn.functional.mse_loss(self.proj(self._h), targets)

    def sync(self, d: DistContext) -> None:
        """Average the projection's gradients over torchrun ranks (it lives outside DDP)."""
        if d.enabled:
            import torch.distributed as dist

            for p in self.proj.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= d.world_size

    def close(self) -> None:
        self._hook.remove()


def _save_state(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


@dataclass
class _Run:
    """Everything a training run changes as it goes (what a saved state restores), with the objects that change it."""

    model: nn.Module
    fkd: FeatureDistiller | None
    opt: torch.optim.Optimizer
    sched: Any
    rng: np.random.Generator
    gen: torch.Generator
    mean: torch.Tensor  # per-mel mean: what SpecAugment fills masks with
    steps_per_epoch: int
    total: int
    step: int = 0
    run_loss: float = 0.0
    perm: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    history: dict[str, Any] = dataclasses.field(default_factory=lambda: {"epochs": [], "train_examples_seen": 0})
    best: tuple[float, dict[str, torch.Tensor]] | None = None

    def state(self, fingerprint: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT, "fingerprint": fingerprint, "step": self.step, "run_loss": self.run_loss,
            "perm": torch.from_numpy(self.perm), "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "projection": self.fkd.proj.state_dict() if self.fkd is not None else None,
            "numpy_rng": self.rng.bit_generator.state, "torch_gen": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
            "history": self.history, "best": self.best,
        }

    def restore(self, path: Path, fingerprint: dict[str, Any]) -> None:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("format") != STATE_FORMAT or saved.get("fingerprint") != fingerprint:
            raise ConfigError(f"{path} was saved by a different training run ({saved.get('fingerprint')}); "
                              f"delete it or run without --resume")
        self.model.load_state_dict(saved["model"])
        if self.fkd is not None:
            self.fkd.proj.load_state_dict(saved["projection"])
        self.opt.load_state_dict(saved["optimizer"])
        self.sched.load_state_dict(saved["scheduler"])
        self.rng.bit_generator.state = saved["numpy_rng"]
        self.gen.set_state(saved["torch_gen"])
        torch.set_rng_state(saved["torch_rng"])
        self.step, self.run_loss, self.perm, self.history = saved["step"], saved["run_loss"], saved["perm"].numpy(), saved["history"]
        self.best = saved["best"]
        self.history.setdefault("resumed_at_steps", []).append(self.step)


def _prepare(cfg: TrainConfig, train: FeatureSet, model: nn.Module | None, d: DistContext, feature_dim: int | None) -> _Run:
    """Seeds, input statistics, the model (built unless given), optimizer and one-cycle schedule, in a fixed order."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    stats = train.x[rng.choice(len(train), size=min(len(train), 4000), replace=False)].astype(np.float32)
    mean = torch.from_numpy(stats.mean(axis=(0, 1)))
    if model is None:
        model = build_model(cfg.arch, n_labels=len(train.labels), n_mels=train.x.shape[2])
        model.norm.set_stats(mean, torch.from_numpy(stats.std(axis=(0, 1))))  # type: ignore[operator]
    model = model.to(d.device).to(memory_format=torch.channels_last)
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    fkd = FeatureDistiller(model, feature_dim, d.device) if feature_dim is not None and cfg.feature_kd > 0 else None
    params = list(model.parameters()) + (list(fkd.proj.parameters()) if fkd is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    return _Run(model, fkd, opt, sched, rng, gen, mean, steps_per_epoch, total)


def _train_step(run: _Run, net: nn.Module, cfg: TrainConfig, train: FeatureSet, d: DistContext, teacher_logits: Any | None,
                feature_targets: np.ndarray | None, ce: nn.Module) -> None:
    """One optimizer step on this rank's share of the next global batch (a new permutation at each epoch's start)."""
    s = run.step % run.steps_per_epoch
    if s == 0:
        run.perm = run.rng.permutation(len(train))
        run.run_loss = 0.0
    net.train()
    rows = run.perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
    masks = _specaugment_masks(rows.shape[0], train.x.shape[1], train.x.shape[2], cfg, run.gen) if cfg.specaugment else None
    order = np.argsort(rows, kind="stable")  # sorted rows read faster from memory-mapped arrays
    mine = shard_rows(order, d.rank, d.world_size)
    idx = rows[mine]
    x = torch.from_numpy(train.x[idx].astype(np.float32))
    y = torch.from_numpy(train.y[idx])
    if masks is not None:
        x = _masked(x, run.mean, (masks[0][mine], masks[1][mine]))
    x, y = x.to(d.device), y.to(d.device)
    logits = net(x)
    if teacher_logits is not None and cfg.alpha > 0:
        tl = torch.from_numpy(np.ascontiguousarray(teacher_logits[idx], dtype=np.float32)).to(d.device)
        loss = kd_loss(logits, tl, y, alpha=cfg.alpha, temperature=cfg.temperature)
    else:
        loss = ce(logits, y)
    if run.fkd is not None and feature_targets is not None:
        ft = torch.from_numpy(np.ascontiguousarray(feature_targets[idx], dtype=np.float32)).to(d.device)
        loss = loss + cfg.feature_kd * run.fkd.loss(ft)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if run.fkd is not None:
        run.fkd.sync(d)
    run.opt.step()
    run.sched.step()
    (step_loss,) = d.all_sum([loss.item()])
    run.run_loss += step_loss / d.world_size
    run.history["train_examples_seen"] += int(rows.shape[0])
    run.step += 1


def _end_epoch(run: _Run, val: FeatureSet | None, d: DistContext) -> float:
    """Validation accuracy of the epoch just ended; the best epoch's weights are kept (ties: the later one)."""
    epoch = run.step // run.steps_per_epoch
    val_acc = accuracy(run.model, val, d) if val is not None else float("nan")
    run.history["epochs"].append({"epoch": epoch, "loss": run.run_loss / run.steps_per_epoch, "val_accuracy": val_acc})
    if run.best is None or not (val_acc <= run.best[0]):
        run.best = (val_acc, copy.deepcopy({k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()}))
    return val_acc


def train_model(
    cfg: TrainConfig,
    train: FeatureSet,
    val: FeatureSet | None,
    *,
    teacher_logits: Any | None = None,
    progress: bool = True,
    model: nn.Module | None = None,
    before_epoch: Callable[[nn.Module, int], None] | None = None,
    dist: DistContext | None = None,
    state: Resume | None = None,
    feature_targets: np.ndarray | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``cfg.arch`` on ``train`` (or go on training ``model``); keep the best validation epoch.

    ``teacher_logits``: rows aligned with ``train`` (an array or a memory-mapped ``LogitCache`` view).
    ``feature_targets``: ``(rows, D)`` teacher features aligned with ``train`` for feature distillation (weight
    ``cfg.feature_kd``).
    ``before_epoch(model, epoch)`` is called before each epoch (QAT uses it to freeze observers late).
    ``dist``: torchrun context (DDP, global-batch sharding, reduced metrics, rank-0 logging and state).
    ``state``: resumable training state (model, optimizer, scheduler, sampler position, RNG streams).
    """
    d = dist or DistContext()
    if cfg.batch_size % d.world_size:
        raise ConfigError(f"the batch size {cfg.batch_size} must split evenly over {d.world_size} processes")
    run = _prepare(cfg, train, model, d, feature_targets.shape[1] if feature_targets is not None else None)
    fingerprint = _fingerprint(cfg, train, run.total)
    if state is not None and state.resume and state.path.is_file():
        run.restore(state.path, fingerprint)
    net: nn.Module = run.model
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(run.model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    bar = None
    if progress and d.is_main:
        from edgekd.core.progress import Progress

        bar = Progress(f"train {cfg.arch}" + (f" x{d.world_size}" if d.enabled else ""), run.total, "step", initial=run.step)
    save_to = state.path if state is not None and d.is_main else None
    every = state.every if state is not None else 0
    ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    t0 = time.time()
    while run.step < run.total:
        epoch, s = divmod(run.step, run.steps_per_epoch)
        if before_epoch is not None:
            before_epoch(run.model, epoch)
        _train_step(run, net, cfg, train, d, teacher_logits, feature_targets, ce)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{run.run_loss / (s + 1):.3f}")
        if run.step % run.steps_per_epoch == 0:
            val_acc = _end_epoch(run, val, d)
            if bar is not None:
                bar.set_postfix(epoch=epoch + 1, loss=f"{run.run_loss / run.steps_per_epoch:.3f}", val=f"{val_acc:.4f}")
            if save_to is not None:
                _save_state(save_to, run.state(fingerprint))
        elif save_to is not None and every > 0 and run.step % every == 0:
            _save_state(save_to, run.state(fingerprint))
    if bar is not None:
        bar.close()
    if run.fkd is not None:
        run.fkd.close()
    model = run.model.cpu().to(memory_format=torch.contiguous_format)
    assert run.best is not None
    model.load_state_dict(run.best[1])
    h = run.history
    h.update(best_val_accuracy=run.best[0], train_seconds=time.time() - t0, steps=run.step, final_loss=h["epochs"][-1]["loss"])
    return model.eval(), h
