"""The teacher: a wide VGG-style CNN (about 0.6M parameters, >= 20x the students)."""

from __future__ import annotations

import torch
from torch import nn

from edgekd.train.models.common import FeatureNorm, conv_bn_relu

__all__ = ["CNNTeacher"]


class CNNTeacher(nn.Module):
    def __init__(self, n_labels: int, n_mels: int = 40, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.norm = FeatureNorm(n_mels)
        self.features = nn.Sequential(
            conv_bn_relu(1, w, (3, 3), (2, 2)),
            conv_bn_relu(w, w, (3, 3)),
            conv_bn_relu(w, 2 * w, (3, 3), (2, 2)),
            conv_bn_relu(2 * w, 2 * w, (3, 3)),
            conv_bn_relu(2 * w, 4 * w, (3, 3), (2, 2)),
            conv_bn_relu(4 * w, 4 * w, (3, 3)),
            conv_bn_relu(4 * w, 8 * w, (3, 3), (2, 2)),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * w, n_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.norm(x).unsqueeze(1))
        return self.head(h.mean(dim=(2, 3)))
