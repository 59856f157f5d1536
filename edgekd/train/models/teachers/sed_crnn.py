"""``SedCRNN``, the SED teacher: input ``(B, T, n_mels)`` log-mel, output ``(B, T // TIME_POOL, n_labels)`` frame
logits. Conv blocks pool frequency only, then a bidirectional GRU over time (it sees the future, so it cannot stream)."""

from __future__ import annotations

import torch
from torch import nn

from edgekd.train.models.common import FeatureNorm
from edgekd.train.models.sed_frames import pool_time

__all__ = ["SedCRNN"]


class SedCRNN(nn.Module):
    """About 0.3M parameters at the default widths."""

    def __init__(self, n_labels: int, n_mels: int = 40, widths: tuple[int, ...] = (32, 64, 96, 128), hidden: int = 96) -> None:
        super().__init__()
        self.norm = FeatureNorm(n_mels)
        layers: list[nn.Module] = []
        cin = 1
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d((1, 2))]
            cin = w
        self.cnn = nn.Sequential(*layers)
        self.rnn = nn.GRU(cin, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.cnn(self.norm(pool_time(x)).unsqueeze(1))  # (B, C, T, M')
        h = h.mean(dim=3).transpose(1, 2)  # (B, T, C)
        h, _ = self.rnn(h)
        return self.head(h)
