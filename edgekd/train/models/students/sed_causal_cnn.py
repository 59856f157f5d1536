"""``SedCausalCNN``, the SED student: input ``(B, T, n_mels)`` log-mel, output ``(B, T // TIME_POOL, n_labels)`` frame
logits. Causal time kernels (padding on the past side only) and frequency pooling, then a causal 1-D conv over
time: frame t depends only on frames <= t, so it can run on a stream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.train.models.common import FeatureNorm
from edgekd.train.models.sed_frames import pool_time

__all__ = ["CausalConv", "SedCausalCNN"]


class CausalConv(nn.Module):
    """A convolution over time (the last axis of a 1-D conv; the one before last of a 2-D conv over (time, freq))
    padded on the past side only, then an optional BatchNorm and ReLU. Converts itself for QAT (``to_qat``)."""

    def __init__(self, conv: nn.Conv1d | nn.Conv2d, bn: nn.BatchNorm1d | nn.BatchNorm2d | None = None, relu: bool = True,
                 quantize_input: bool = False) -> None:
        super().__init__()
        self.conv, self.bn, self.relu, self.quantize_input = conv, bn, relu, quantize_input
        self.left = conv.kernel_size[0] - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.left, 0) if isinstance(self.conv, nn.Conv1d) else (0, 0, self.left, 0)
        y = self.conv(F.pad(x, pad) if self.left else x)
        if self.bn is not None:
            y = self.bn(y)
        return F.relu(y) if self.relu else y

    def to_qat(self) -> nn.Module:
        from edgekd.train.qat import QConv

        # after a time pad the input needs its own quantizer so that the conv reads quantized values
        return QConv(self.conv, self.bn, self.relu, left_pad=self.left, quantize_input=self.quantize_input or self.left > 0)


def _block2d(cin: int, cout: int, kt: int, kf: int, groups: int = 1) -> CausalConv:
    return CausalConv(nn.Conv2d(cin, cout, (kt, kf), padding=(0, kf // 2), groups=groups, bias=False), nn.BatchNorm2d(cout))


class SedCausalCNN(nn.Module):
    """About 27k parameters at the default width (80; 64 gives 18k). Width 80 was chosen on the validation split of
    bench/sed.py (distilled, with the transfer set: validation event-F1 0.67 at width 80 vs 0.60 at 64)."""

    def __init__(self, n_labels: int, n_mels: int = 40, width: int = 80, context: int = 9) -> None:
        super().__init__()
        self.norm = FeatureNorm(n_mels)
        half = width // 2
        self.blocks = nn.Sequential(
            _block2d(1, half, 3, 3),
            nn.MaxPool2d((1, 2)),
            _block2d(half, half, 3, 3, groups=half), _block2d(half, width, 1, 1),
            nn.MaxPool2d((1, 2)),
            _block2d(width, width, 3, 3, groups=width), _block2d(width, width, 1, 1),
            nn.MaxPool2d((1, 2)),
            _block2d(width, width, 3, 3, groups=width), _block2d(width, width, 1, 1),
        )
        self.context = context
        # over time at 40 ms: a depthwise causal conv of `context` frames, a pointwise mix, the frame head
        self.temporal = CausalConv(nn.Conv1d(width, width, context, groups=width, bias=False), relu=False, quantize_input=True)
        self.mix = CausalConv(nn.Conv1d(width, width, 1))
        self.head = CausalConv(nn.Conv1d(width, n_labels, 1), relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.norm(pool_time(x)).unsqueeze(1))  # (B, C, T, M')
        h = h.mean(dim=3)  # (B, C, T)
        return self.head(self.mix(self.temporal(h))).transpose(1, 2)
