"""The training loop shared by teacher and students: AdamW + one-cycle LR, SpecAugment, KD on cached logits."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from edgekd.train.config import TrainConfig
from edgekd.train.distill import kd_loss
from edgekd.train.features import FeatureSet
from edgekd.train.students import build_model

__all__ = ["train_model", "predict_logits", "accuracy"]


def _specaugment(x: torch.Tensor, fill: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    b, t, m = x.shape
    x = x.clone()
    for _ in range(cfg.time_masks):
        w = torch.randint(0, cfg.time_mask_frames + 1, (b,), generator=gen)
        s = (torch.rand(b, generator=gen) * (t - w)).long()
        r = torch.arange(t)[None, :]
        mask = (r >= s[:, None]) & (r < (s + w)[:, None])
        x = torch.where(mask[:, :, None], fill[None, None, :], x)
    for _ in range(cfg.freq_masks):
        w = torch.randint(0, cfg.freq_mask_bands + 1, (b,), generator=gen)
        s = (torch.rand(b, generator=gen) * (m - w)).long()
        r = torch.arange(m)[None, :]
        mask = (r >= s[:, None]) & (r < (s + w)[:, None])
        x = torch.where(mask[:, None, :], fill[None, None, :], x)
    return x


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, x.shape[0], batch_size):
        out.append(model(torch.from_numpy(np.asarray(x[i : i + batch_size], dtype=np.float32))).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def accuracy(model: nn.Module, fs: FeatureSet) -> float:
    return float(np.mean(predict_logits(model, fs.x).argmax(-1) == fs.y)) if len(fs) else float("nan")


def train_model(
    cfg: TrainConfig,
    train: FeatureSet,
    val: FeatureSet | None,
    *,
    teacher_logits: np.ndarray | None = None,
    progress: bool = True,
    model: nn.Module | None = None,
    before_epoch: Callable[[nn.Module, int], None] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``cfg.arch`` on ``train`` (or go on training ``model``); keep the best validation epoch.

    ``before_epoch(model, epoch)`` is called before each epoch (QAT uses it to freeze observers late).
    """
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
    model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    t_logits = torch.from_numpy(teacher_logits.astype(np.float32)) if teacher_logits is not None else None
    ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    history: dict[str, Any] = {"epochs": [], "train_examples_seen": 0}
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"train {cfg.arch}", unit="step", dynamic_ncols=True)
    t0 = time.time()
    for epoch in range(cfg.epochs):
        if before_epoch is not None:
            before_epoch(model, epoch)
        model.train()
        perm = rng.permutation(len(train))
        run_loss = 0.0
        for s in range(steps_per_epoch):
            idx = np.sort(perm[s * cfg.batch_size : (s + 1) * cfg.batch_size])
            x = torch.from_numpy(train.x[idx].astype(np.float32))
            y = torch.from_numpy(train.y[idx])
            if cfg.specaugment:
                x = _specaugment(x, mean, cfg, gen)
            logits = model(x)
            if t_logits is not None and cfg.alpha > 0:
                loss = kd_loss(logits, t_logits[idx], y, alpha=cfg.alpha, temperature=cfg.temperature)
            else:
                loss = ce(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run_loss += loss.item()
            history["train_examples_seen"] += int(idx.shape[0])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{run_loss / (s + 1):.3f}")
        model = model.to(memory_format=torch.contiguous_format)
        val_acc = accuracy(model, val) if val is not None else float("nan")
        model = model.to(memory_format=torch.channels_last)
        history["epochs"].append({"epoch": epoch + 1, "loss": run_loss / steps_per_epoch, "val_accuracy": val_acc})
        if bar is not None:
            bar.set_postfix(epoch=epoch + 1, loss=f"{run_loss / steps_per_epoch:.3f}", val=f"{val_acc:.4f}")
        if best is None or not (val_acc <= best[0]):
            best = (val_acc, copy.deepcopy({k: v.contiguous() for k, v in model.state_dict().items()}))
    if bar is not None:
        bar.close()
    model = model.to(memory_format=torch.contiguous_format)
    assert best is not None
    model.load_state_dict(best[1])
    history["best_val_accuracy"] = best[0]
    history["train_seconds"] = time.time() - t0
    return model.eval(), history
