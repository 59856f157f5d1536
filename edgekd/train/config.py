"""``TrainConfig``: every hyper-parameter of one training run, typed, saved inside the checkpoint; ``OPTION_BOUNDS``:
the values its optional augmentations and weight average take (the commands' and the studies' checks read them)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from edgekd.core.errors import ConfigError

__all__ = ["OPTION_BOUNDS", "Bound", "TrainConfig"]


@dataclass(frozen=True)
class Bound:
    """A finite number from ``lo`` (included) to ``hi`` (included when ``hi_included``)."""

    lo: float
    hi: float
    hi_included: bool

    def ok(self, value: float) -> bool:
        return math.isfinite(value) and self.lo <= value and (value <= self.hi if self.hi_included else value < self.hi)

    def __str__(self) -> str:
        return f"[{self.lo:g}, {self.hi:g}{']' if self.hi_included else ')'}"


# TrainConfig fields a command line or a study cell may set, and the values each takes
OPTION_BOUNDS: dict[str, Bound] = {"freq_warp": Bound(0.0, 0.5, False), "eq_db": Bound(0.0, 20.0, True), "ema": Bound(0.0, 1.0, False)}


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "dscnn"
    epochs: int = 6
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-2
    seed: int = 0
    threads: int = 2
    alpha: float = 0.7  # KD weight; 0 = no teacher
    temperature: float = 3.0
    feature_kd: float = 0.0  # weight of feature distillation onto the teacher's embedding (0 = off)
    label_smoothing: float = 0.0
    freq_warp: float = 0.0  # frequency-axis scaling of each training window, factor drawn from [1 - w, 1 + w] (0 = off)
    eq_db: float = 0.0  # random smooth EQ of each training window, cosine weights within +-eq_db dB (train.mel_augment; 0 = off)
    ema: float = 0.0  # decay of the weight average that is validated and kept (0 = off; train.loop.Schedule)
    # rows labelled _unknown_ / _silence_ (known to hold no keyword) take none of the teacher's keyword mass in KD
    # (distill.drop_keyword_mass); unlabelled transfer rows keep the teacher's targets as they are
    clean_negatives: bool = False
    # logit-adjusted loss (distill.label_log_prior): the model's logits score the labels as if they were equally
    # frequent in training, whatever the clip counts per label (QAT inherits it)
    balance_labels: bool = False
    specaugment: bool = True
    time_masks: int = 2
    time_mask_frames: int = 10
    freq_masks: int = 2
    freq_mask_bands: int = 5

    def __post_init__(self) -> None:
        for name, bound in OPTION_BOUNDS.items():
            if not bound.ok(getattr(self, name)):
                raise ConfigError(f"{name} must be a number in {bound}, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
