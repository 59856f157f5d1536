"""DS-CNN (Zhang et al., "Hello Edge", 2017): a strided conv, then depthwise-separable blocks."""

from __future__ import annotations

import torch
from torch import nn

from edgekd.train.models.common import FeatureNorm, conv_bn_relu

__all__ = ["DSCNN"]


class DSCNN(nn.Module):
    """Input ``(B, T, n_mels)`` log-mel; output ``(B, n_labels)`` logits. About 23k params at width 64."""

    def __init__(self, n_labels: int, n_mels: int = 40, width: int = 64, blocks: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = FeatureNorm(n_mels)
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, (10, 4), stride=(2, 2), padding=(5, 1), bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        layers: list[nn.Module] = []
        for i in range(blocks):
            stride = (2, 2) if i == 0 else (1, 1)
            layers += [conv_bn_relu(width, width, (3, 3), stride, groups=width), conv_bn_relu(width, width, (1, 1))]
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, n_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(self.norm(x).unsqueeze(1))
        h = self.blocks(h)
        return self.head(h.mean(dim=(2, 3)))
