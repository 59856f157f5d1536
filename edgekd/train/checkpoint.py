"""``Checkpoint``: config + dimensions + labels + state_dict in one file, so a model rebuilds itself."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekd.core.errors import ConfigError
from edgekd.core.fsutil import atomic_write
from edgekd.train.models import build_model

__all__ = ["Checkpoint"]

FORMAT = "edgekd-checkpoint-1"


@dataclass
class Checkpoint:
    arch: str
    labels: tuple[str, ...]
    n_mels: int
    frontend: dict[str, Any]
    window_frames: int
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        m = build_model(self.arch, n_labels=len(self.labels), n_mels=self.n_mels, **self.config.get("arch_kwargs", {}))
        if self.is_qat:
            from edgekd.train.qat import to_qat

            m = to_qat(m, weight_bits=int(self.config.get("qat_weight_bits", 8)))  # checkpoints before 7-bit weights: 8
        m.load_state_dict(self.state_dict)
        return m.eval()

    @property
    def input_frames(self) -> int:
        """Frames of one model input: ``window_frames``, or more for a streaming student (its time kernels' context)."""
        return int(getattr(self.build(), "input_frames", self.window_frames))

    @property
    def is_qat(self) -> bool:
        return bool(self.config.get("qat"))

    def save(self, path: str | os.PathLike[str]) -> None:
        payload = {"format": FORMAT, **{k: getattr(self, k) for k in self.__dataclass_fields__}}
        payload["labels"] = list(self.labels)
        atomic_write(path, lambda tmp: torch.save(payload, tmp))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: no such checkpoint file")
        try:
            d = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a bad file
            raise ConfigError(f"{p}: not an edgekd checkpoint ({type(e).__name__})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ConfigError(f"{p}: not an edgekd checkpoint (format {d.get('format') if isinstance(d, dict) else '?'})")
        d.pop("format")
        d["labels"] = tuple(d["labels"])
        return cls(**d)
