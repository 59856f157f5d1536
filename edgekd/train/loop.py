"""The training loop shared by teacher and students: AdamW + one-cycle LR, SpecAugment, KD on cached logits;
DDP under torchrun and resumable state."""

from __future__ import annotations

import copy
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
from edgekd.train.students import build_model

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
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    n_labels = len(train.labels)
    stats = train.x[rng.choice(len(train), size=min(len(train), 4000), replace=False)].astype(np.float32)
    mean = torch.from_numpy(stats.mean(axis=(0, 1)))
    if model is None:
        model = build_model(cfg.arch, n_labels=n_labels, n_mels=train.x.shape[2])
        model.norm.set_stats(mean, torch.from_numpy(stats.std(axis=(0, 1))))  # type: ignore[operator]
    model = model.to(d.device).to(memory_format=torch.channels_last)
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    fkd = FeatureDistiller(model, feature_targets.shape[1], d.device) if feature_targets is not None and cfg.feature_kd > 0 else None
    params = list(model.parameters()) + (list(fkd.proj.parameters()) if fkd is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    history: dict[str, Any] = {"epochs": [], "train_examples_seen": 0}
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    step, run_loss, perm = 0, 0.0, np.zeros(0, dtype=np.int64)
    fingerprint = _fingerprint(cfg, train, total)
    if state is not None and state.resume and state.path.is_file():
        saved = torch.load(state.path, map_location="cpu", weights_only=True)
        if saved.get("format") != STATE_FORMAT or saved.get("fingerprint") != fingerprint:
            raise ConfigError(f"{state.path} was saved by a different training run ({saved.get('fingerprint')}); "
                              f"delete it or run without --resume")
        model.load_state_dict(saved["model"])
        if fkd is not None:
            fkd.proj.load_state_dict(saved["projection"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        rng.bit_generator.state = saved["numpy_rng"]
        gen.set_state(saved["torch_gen"])
        torch.set_rng_state(saved["torch_rng"])
        step, run_loss, perm, history = saved["step"], saved["run_loss"], saved["perm"].numpy(), saved["history"]
        best = saved["best"]
        history.setdefault("resumed_at_steps", []).append(step)
    net: nn.Module = model
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    bar = None
    if progress and d.is_main:
        from edgekd.core.progress import Progress

        bar = Progress(f"train {cfg.arch}" + (f" x{d.world_size}" if d.enabled else ""), total, "step", initial=step)

    def snapshot() -> None:
        if state is None or not d.is_main:
            return
        _save_state(state.path, {
            "format": STATE_FORMAT, "fingerprint": fingerprint, "step": step, "run_loss": run_loss, "perm": torch.from_numpy(perm),
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "projection": fkd.proj.state_dict() if fkd is not None else None,
            "numpy_rng": rng.bit_generator.state, "torch_gen": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "history": history, "best": best,
        })

    t0 = time.time()
    while step < total:
        epoch, s = divmod(step, steps_per_epoch)
        if s == 0:
            perm = rng.permutation(len(train))
            run_loss = 0.0
        if before_epoch is not None:
            before_epoch(model, epoch)
        net.train()
        rows = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
        masks = _specaugment_masks(rows.shape[0], train.x.shape[1], train.x.shape[2], cfg, gen) if cfg.specaugment else None
        order = np.argsort(rows, kind="stable")  # sorted rows read faster from memory-mapped arrays
        mine = shard_rows(order, d.rank, d.world_size)
        idx = rows[mine]
        x = torch.from_numpy(train.x[idx].astype(np.float32))
        y = torch.from_numpy(train.y[idx])
        if masks is not None:
            x = _masked(x, mean, (masks[0][mine], masks[1][mine]))
        x, y = x.to(d.device), y.to(d.device)
        logits = net(x)
        if teacher_logits is not None and cfg.alpha > 0:
            tl = torch.from_numpy(np.ascontiguousarray(teacher_logits[idx], dtype=np.float32)).to(d.device)
            loss = kd_loss(logits, tl, y, alpha=cfg.alpha, temperature=cfg.temperature)
        else:
            loss = ce(logits, y)
        if fkd is not None:
            ft = torch.from_numpy(np.ascontiguousarray(feature_targets[idx], dtype=np.float32)).to(d.device)  # type: ignore[index]
            loss = loss + cfg.feature_kd * fkd.loss(ft)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if fkd is not None:
            fkd.sync(d)
        opt.step()
        sched.step()
        (step_loss,) = d.all_sum([loss.item()])
        run_loss += step_loss / d.world_size
        history["train_examples_seen"] += int(rows.shape[0])
        step += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{run_loss / (s + 1):.3f}")
        if step % steps_per_epoch == 0:
            val_acc = accuracy(model, val, d) if val is not None else float("nan")
            history["epochs"].append({"epoch": epoch + 1, "loss": run_loss / steps_per_epoch, "val_accuracy": val_acc})
            if bar is not None:
                bar.set_postfix(epoch=epoch + 1, loss=f"{run_loss / steps_per_epoch:.3f}", val=f"{val_acc:.4f}")
            if best is None or not (val_acc <= best[0]):
                best = (val_acc, copy.deepcopy({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}))
            snapshot()
        elif state is not None and state.every > 0 and step % state.every == 0:
            snapshot()
    if bar is not None:
        bar.close()
    if fkd is not None:
        fkd.close()
    model = model.cpu().to(memory_format=torch.contiguous_format)
    assert best is not None
    model.load_state_dict(best[1])
    history["best_val_accuracy"] = best[0]
    history["train_seconds"] = time.time() - t0
    history["steps"] = step
    history["final_loss"] = history["epochs"][-1]["loss"]
    return model.eval(), history
