"""A DS-CNN that streams: no padding and no stride in time, so a hop computes only its new frames.

Time kernels are "valid" (no padding): a window of ``98 + CONTEXT`` frames yields exactly 98 output
frames, which are averaged. The same network runs in two forms with identical results:
- whole window: input ``(B, 115, 40)`` -> logits (any runtime, any model file);
- streaming: ``StreamingStep`` takes the hop's new frames plus explicit state tensors (the last inputs
  of every time kernel and the last 98 pooled vectors) and returns logits plus the new state.
Shorter inputs (training clips of 98 frames) are padded on the left with the silence value, which is
what the runtime's frame buffer holds at the start of a stream.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.train.students.common import FeatureNorm

__all__ = ["DSCNNStream", "StreamingStep", "CONTEXT", "POOL_FRAMES", "pad_to"]

STEM_T = 10
BLOCK_T = 3
POOL_FRAMES = 98
FLOOR = math.log(1e-6)


@torch.fx.wrap
def pad_to(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Left-pad ``(B, T, M)`` features with the silence value up to ``frames`` (a no-op for full windows)."""
    return F.pad(x, (0, 0, frames - x.shape[1], 0), value=FLOOR) if x.shape[1] < frames else x


def _cbr(conv: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU(inplace=True))


class DSCNNStream(nn.Module):
    def __init__(self, n_labels: int, n_mels: int = 40, width: int = 32, blocks: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = FeatureNorm(n_mels)
        self.stem = _cbr(nn.Conv2d(1, width, (STEM_T, 4), stride=(1, 2), padding=(0, 1), bias=False))
        layers: list[nn.Module] = []
        for i in range(blocks):
            layers += [
                _cbr(nn.Conv2d(width, width, (BLOCK_T, 3), stride=(1, 2 if i == 0 else 1), padding=(0, 1), groups=width, bias=False)),
                _cbr(nn.Conv2d(width, width, 1, bias=False)),
            ]
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, n_labels))
        self.n_blocks = blocks
        self.input_frames = POOL_FRAMES + (STEM_T - 1) + blocks * (BLOCK_T - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, M)
        x = pad_to(x, self.input_frames)
        h = self.blocks(self.stem(self.norm(x).unsqueeze(1)))  # (B, C, T', F')
        h = h[:, :, -POOL_FRAMES:, :]
        return self.head(h.mean(dim=(2, 3)))


CONTEXT = (STEM_T - 1) + 4 * (BLOCK_T - 1)


class StreamingStep(nn.Module):
    """One hop of ``DSCNNStream``: (new_frames, *states) -> (logits, *new_states). Eval mode only."""

    def __init__(self, model: DSCNNStream) -> None:
        super().__init__()
        self.m = model.eval()

    def state_shapes(self, hop: int) -> list[tuple[int, ...]]:
        m = self.m
        c = m.stem[0].out_channels
        f_stem = (m.norm.mean.shape[0] + 2 - 4) // 2 + 1
        f_blk = (f_stem + 2 - 3) // 2 + 1
        shapes = [(1, STEM_T - 1, m.norm.mean.shape[0])]
        for i in range(m.n_blocks):
            shapes.append((1, c, BLOCK_T - 1, f_stem if i == 0 else f_blk))
        shapes.append((1, POOL_FRAMES, c))
        return shapes

    def forward(self, frames: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.m
        x = torch.cat([states[0], m.norm(frames)], dim=1)  # normalised inputs: (1, 9 + k, M)
        new_states = [x[:, -(STEM_T - 1) :, :]]
        h = m.stem(x.unsqueeze(1))  # (1, C, k, F)
        blocks = list(m.blocks)
        for i in range(m.n_blocks):
            dw, pw = blocks[2 * i], blocks[2 * i + 1]
            hx = torch.cat([states[1 + i], h], dim=2)
            new_states.append(hx[:, :, -(BLOCK_T - 1) :, :])
            h = pw(dw(hx))
        pooled = h.mean(dim=3).transpose(1, 2)  # (1, k, C)
        pool = torch.cat([states[-1], pooled], dim=1)[:, -POOL_FRAMES:, :]
        new_states.append(pool)
        logits = m.head(pool.mean(dim=1))
        return (logits, *new_states)
