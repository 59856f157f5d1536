"""Pieces shared by every architecture."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FeatureNorm", "conv_bn_relu"]


class FeatureNorm(nn.Module):
    """Fixed per-mel-band mean/std from the training features, baked into the exported graph."""

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("inv_std", torch.ones(n_mels))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.inv_std.copy_(1.0 / std.clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, M)
        return (x - self.mean) * self.inv_std


def conv_bn_relu(cin: int, cout: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1), groups: int = 1) -> nn.Sequential:
    pad = (kernel[0] // 2, kernel[1] // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )
