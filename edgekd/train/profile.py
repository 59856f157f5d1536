"""Parameter and multiply-accumulate counts of a torch model (conv and linear layers)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["count_params", "count_macs"]


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass on a single example of ``input_shape`` (batch 1 included in the shape)."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += int(out.numel() * (m.in_channels // m.groups) * kh * kw)

    def linear_hook(m: nn.Linear, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total
        total += int(out.numel() * m.in_features)

    def conv1d_hook(m: nn.Conv1d, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total
        total += int(out.numel() * (m.in_channels // m.groups) * m.kernel_size[0])

    def gru_hook(m: nn.GRU, inp: tuple[torch.Tensor], _out: object) -> None:
        nonlocal total
        steps = inp[0].shape[1] if m.batch_first else inp[0].shape[0]
        dirs = 2 if m.bidirectional else 1
        for layer in range(m.num_layers):
            n_in = m.input_size if layer == 0 else m.hidden_size * dirs
            total += int(steps * dirs * 3 * (n_in + m.hidden_size) * m.hidden_size)

    def quantized_hook(m: nn.Module, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total  # QAT convolutions and linears: every output reads one weight row
        total += int(out.numel() * m.weight[0].numel())  # type: ignore[index]

    from edgekd.train.qat import QConv, QLinear

    hooks = []
    for mod in model.modules():
        if isinstance(mod, (QConv, QLinear)):
            hooks.append(mod.register_forward_hook(quantized_hook))
        elif isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Conv1d):
            hooks.append(mod.register_forward_hook(conv1d_hook))
        elif isinstance(mod, nn.GRU):
            hooks.append(mod.register_forward_hook(gru_hook))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    model(torch.zeros(input_shape))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total
