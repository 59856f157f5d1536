"""KWS (and wake-word) training on fixed feature windows: SpecAugment, optional frequency warping and random EQ,
logit distillation on cached teacher logits, optional feature distillation; ``train_model`` runs it through the one loop (``train.loop.fit``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from edgekd.data import SILENCE, UNKNOWN
from edgekd.train.config import TrainConfig
from edgekd.train.dist import DistContext, shard_rows
from edgekd.train.distill import drop_keyword_mass, kd_loss, label_log_prior
from edgekd.train.features import FeatureSet
from edgekd.train.loop import Resume, Schedule, accuracy, fit
from edgekd.train.mel_augment import EQ_TERMS, tilt_mels, warp_mels
from edgekd.train.models import build_model

__all__ = ["KwsObjective", "FeatureDistiller", "train_model"]


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


class KwsObjective:
    """Rows of a ``FeatureSet`` (log-mel windows or embedding frames), cross-entropy or KD on aligned teacher
    logits, SpecAugment masks filled with the per-mel mean, validation accuracy."""

    def __init__(self, cfg: TrainConfig, train: FeatureSet, val: FeatureSet | None, teacher_logits: Any | None = None,
                 feature_targets: np.ndarray | None = None) -> None:
        self.cfg, self.train, self.val = cfg, train, val
        self.teacher_logits, self.feature_targets = teacher_logits, feature_targets
        self.title = f"train {cfg.arch}"
        self.rows = len(train)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.mean = torch.zeros(train.x.shape[2])
        self.fkd: FeatureDistiller | None = None
        self.ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.negative_ids = torch.tensor([i for i, lab in enumerate(train.labels) if lab in (UNKNOWN, SILENCE)], dtype=torch.long)
        self.log_prior = label_log_prior(torch.from_numpy(np.asarray(train.y)), len(train.labels)) if cfg.balance_labels else None

    def setup(self, model: nn.Module | None, rng: np.random.Generator, d: DistContext) -> nn.Module:
        """Input statistics from 4,000 random rows (SpecAugment's fill; a fresh model's input normalisation)."""
        stats = self.train.x[rng.choice(self.rows, size=min(self.rows, 4000), replace=False)].astype(np.float32)
        self.mean = torch.from_numpy(stats.mean(axis=(0, 1)))
        if model is None:
            model = build_model(self.cfg.arch, n_labels=len(self.train.labels), n_mels=self.train.x.shape[2])
            model.norm.set_stats(self.mean, torch.from_numpy(stats.std(axis=(0, 1))))  # type: ignore[operator]
        model = model.to(d.device).to(memory_format=torch.channels_last)
        self.negative_ids = self.negative_ids.to(d.device)
        if self.log_prior is not None:
            self.log_prior = self.log_prior.to(d.device)
        if self.feature_targets is not None and self.cfg.feature_kd > 0:
            self.fkd = FeatureDistiller(model, self.feature_targets.shape[1], d.device)
        return model

    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self.fkd.proj.parameters()) if self.fkd is not None else []

    def loss(self, net: nn.Module, rows: np.ndarray, rng: np.random.Generator, d: DistContext) -> torch.Tensor:
        cfg, train = self.cfg, self.train
        masks = _specaugment_masks(rows.shape[0], train.x.shape[1], train.x.shape[2], cfg, self.gen) if cfg.specaugment else None
        warp = (1.0 + cfg.freq_warp * (2 * torch.rand(rows.shape[0], generator=self.gen) - 1)).numpy() if cfg.freq_warp > 0 else None
        eq = (cfg.eq_db * (2 * torch.rand(rows.shape[0], EQ_TERMS, generator=self.gen) - 1)).numpy() if cfg.eq_db > 0 else None
        order = np.argsort(rows, kind="stable")  # sorted rows read faster from memory-mapped arrays
        mine = shard_rows(order, d.rank, d.world_size)
        idx = rows[mine]
        x = torch.from_numpy(train.x[idx].astype(np.float32))
        y = torch.from_numpy(train.y[idx])
        if warp is not None:
            x = warp_mels(x, warp[mine])
        if eq is not None:
            x = tilt_mels(x, eq[mine])
        if masks is not None:
            x = _masked(x, self.mean, (masks[0][mine], masks[1][mine]))
        x, y = x.to(d.device), y.to(d.device)
        logits = net(x)
        if self.log_prior is not None:
            logits = logits + self.log_prior
        if self.teacher_logits is not None and cfg.alpha > 0:
            tl = torch.from_numpy(np.ascontiguousarray(self.teacher_logits[idx], dtype=np.float32)).to(d.device)
            if cfg.clean_negatives:
                tl = drop_keyword_mass(tl, y, self.negative_ids)
            loss = kd_loss(logits, tl, y, alpha=cfg.alpha, temperature=cfg.temperature)
        else:
            loss = self.ce(logits, y)
        if self.fkd is not None and self.feature_targets is not None:
            ft = torch.from_numpy(np.ascontiguousarray(self.feature_targets[idx], dtype=np.float32)).to(d.device)
            loss = loss + cfg.feature_kd * self.fkd.loss(ft)
        return loss

    def after_backward(self, d: DistContext) -> None:
        if self.fkd is not None:
            self.fkd.sync(d)

    def validate(self, model: nn.Module, d: DistContext) -> dict[str, float]:
        return {"val_accuracy": accuracy(model, self.val, d) if self.val is not None else float("nan")}

    def fingerprint(self) -> dict[str, Any]:
        return {"arch": self.cfg.arch, "data": self.train.key, "alpha": self.cfg.alpha, "feature_kd": self.cfg.feature_kd,
                **({"freq_warp": self.cfg.freq_warp} if self.cfg.freq_warp else {}), **({"eq_db": self.cfg.eq_db} if self.cfg.eq_db else {}),
                **({"balance_labels": True} if self.cfg.balance_labels else {})}

    def state(self) -> dict[str, Any]:
        return {"torch_gen": self.gen.get_state(), "projection": self.fkd.proj.state_dict() if self.fkd is not None else None}

    def restore(self, saved: dict[str, Any]) -> None:
        self.gen.set_state(saved["torch_gen"])
        if self.fkd is not None:
            self.fkd.proj.load_state_dict(saved["projection"])

    def close(self) -> None:
        if self.fkd is not None:
            self.fkd.close()


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
    ``cfg.feature_kd``). The rest as ``train.loop.fit``.
    """
    obj = KwsObjective(cfg, train, val, teacher_logits, feature_targets)
    sch = Schedule(cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.seed, cfg.threads, cfg.ema)
    return fit(obj, sch, model=model, progress=progress, before_epoch=before_epoch, dist=dist, state=state)
