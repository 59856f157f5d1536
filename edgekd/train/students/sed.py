"""Frame-level sound-event models: input ``(B, T, n_mels)`` log-mel (10 ms frames), output ``(B, T // 4, n_labels)``
logits, one per 40 ms (the input is averaged over groups of ``TIME_POOL`` frames first; DCASE systems work at a
similar resolution, and it makes training four times cheaper).

- ``SedCRNN`` (teacher): conv blocks pooling frequency only, then a bidirectional GRU over time (sees the future).
- ``SedCausalCNN`` (student): causal time kernels (padding on the past side only) and frequency pooling, then a
  causal 1-D conv over time: frame t depends only on frames <= t, so it can run on a stream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.train.students.common import FeatureNorm

__all__ = ["SedCRNN", "SedCausalCNN", "TIME_POOL", "pool_time"]

TIME_POOL = 4


def pool_time(x: torch.Tensor) -> torch.Tensor:
    """``(B, T, M)`` -> ``(B, T // TIME_POOL, M)``: the mean of each group of frames (a trailing partial group is dropped)."""
    b, t, m = x.shape
    n = t // TIME_POOL
    return x[:, : n * TIME_POOL].reshape(b, n, TIME_POOL, m).mean(dim=2)


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


class _CausalConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kt: int, kf: int, groups: int = 1) -> None:
        super().__init__()
        self.kt = kt
        self.conv = nn.Conv2d(cin, cout, (kt, kf), padding=(0, kf // 2), groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(F.pad(x, (0, 0, self.kt - 1, 0)))))


class SedCausalCNN(nn.Module):
    """About 18k parameters at the default width."""

    def __init__(self, n_labels: int, n_mels: int = 40, width: int = 64, context: int = 9) -> None:
        super().__init__()
        self.norm = FeatureNorm(n_mels)
        self.stem = _CausalConv2d(1, width // 2, 3, 3)
        self.blocks = nn.Sequential(
            nn.MaxPool2d((1, 2)),
            _CausalConv2d(width // 2, width // 2, 3, 3, groups=width // 2), _CausalConv2d(width // 2, width, 1, 1),
            nn.MaxPool2d((1, 2)),
            _CausalConv2d(width, width, 3, 3, groups=width), _CausalConv2d(width, width, 1, 1),
            nn.MaxPool2d((1, 2)),
            _CausalConv2d(width, width, 3, 3, groups=width), _CausalConv2d(width, width, 1, 1),
        )
        self.context = context
        self.temporal = nn.Conv1d(width, width, context, groups=width, bias=False)
        self.mix = nn.Conv1d(width, width, 1)
        self.head = nn.Conv1d(width, n_labels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(self.norm(pool_time(x)).unsqueeze(1)))  # (B, C, T, M')
        h = h.mean(dim=3)  # (B, C, T)
        h = F.relu(self.mix(self.temporal(F.pad(h, (self.context - 1, 0)))))
        return self.head(h).transpose(1, 2)
