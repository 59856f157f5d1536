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

from edgekd.train.models.common import FeatureNorm

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
        # frequency first, then time: the order the streaming step must use (its state keeps one mean per frame), so
        # that both graphs add the same numbers in the same order and an int8 head sees identical inputs
        return self.head(h.mean(dim=3).mean(dim=2))


CONTEXT = (STEM_T - 1) + 4 * (BLOCK_T - 1)


def _out_channels(stage: nn.Module) -> int:
    """Output channels of a conv stage: ``Sequential(Conv, BN, ReLU)`` (float) or ``Sequential(QConv)`` (after QAT)."""
    first = stage[0] if isinstance(stage, nn.Sequential) else stage
    return int(first.weight.shape[0])


def _requantizer(stage: nn.Module) -> nn.Module:
    """After QAT: the output quantizer of a conv stage (identity on values already on its grid), else identity."""
    first = stage[0] if isinstance(stage, nn.Sequential) else stage
    return getattr(first, "out_q", None) or nn.Identity()


class StreamingStep(nn.Module):
    """One hop of ``DSCNNStream``: (new_frames, *states) -> (logits, *new_states). Eval mode only.

    Works for the float model and for its QAT form (``edgekd.train.qat.to_qat``). In the QAT form every
    concatenation of a state with new values is passed through the quantizer that produced those values: the
    values do not change (they are on its grid already), but the exported graph then feeds each convolution from a
    DequantizeLinear, the pattern onnxruntime fuses into an integer QLinearConv.
    """

    def __init__(self, model: DSCNNStream) -> None:
        super().__init__()
        self.m = model.eval()
        qat = bool(getattr(model, "qat", False))
        blocks = list(model.blocks)
        # requantizers of the inputs of the stem and of each block's depthwise conv
        self.q_in = model.norm[1] if qat else nn.Identity()  # type: ignore[index]
        self.q_blocks = nn.ModuleList([_requantizer(model.stem if i == 0 else blocks[2 * i - 1]) if qat else nn.Identity()
                                       for i in range(model.n_blocks)])

    def state_shapes(self, hop: int) -> list[tuple[int, ...]]:
        m = self.m
        c = _out_channels(m.stem)
        n_mels = m.norm[0].mean.shape[0] if isinstance(m.norm, nn.Sequential) else m.norm.mean.shape[0]
        f_stem = (n_mels + 2 - 4) // 2 + 1
        f_blk = (f_stem + 2 - 3) // 2 + 1
        shapes = [(1, STEM_T - 1, n_mels)]
        for i in range(m.n_blocks):
            shapes.append((1, c, BLOCK_T - 1, f_stem if i == 0 else f_blk))
        shapes.append((1, c, POOL_FRAMES))  # channels first, like the whole window's (1, C, 98) before its time mean
        return shapes

    def forward(self, frames: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.m
        x = self.q_in(torch.cat([states[0], m.norm(frames)], dim=1))  # normalised inputs: (1, 9 + k, M)
        new_states = [x[:, -(STEM_T - 1) :, :]]
        h = m.stem(x.unsqueeze(1))  # (1, C, k, F)
        blocks = list(m.blocks)
        for i in range(m.n_blocks):
            dw, pw = blocks[2 * i], blocks[2 * i + 1]
            hx = self.q_blocks[i](torch.cat([states[1 + i], h], dim=2))
            new_states.append(hx[:, :, -(BLOCK_T - 1) :, :])
            h = pw(dw(hx))
        pooled = h.mean(dim=3)  # (1, C, k)
        pool = torch.cat([states[-1], pooled], dim=2)[:, :, -POOL_FRAMES:]
        new_states.append(pool)
        logits = m.head(pool.mean(dim=2))
        return (logits, *new_states)
