"""Quantization-aware training by hand-written fake quantization (DESIGN.md section 8, the verified path).

- BatchNorm is folded into the preceding conv (weights and a bias) before QAT starts.
- Weights: symmetric per output channel, zero point 0, stored as int8 but scaled to 7 bits by default
  (scale = max|w| / 63, values in -63..63; ``to_qat(weight_bits=8)`` gives -127..127). Why 7: onnxruntime's
  u8s8 integer kernels on x86 without VNNI add pairs of uint8 x int8 products in int16 (``vpmaddubsw``), which
  saturates once 2 * 255 * |w| > 32767. With 8-bit weights a trained wake-word DS-CNN's first layer came out
  up to 106 steps off in 8% of its outputs (the logits 9 steps off); with 7-bit weights the fused kernels
  equal the QDQ reference exactly, so an int8 bundle gives the same answer on an x86 host and an ARM board.
- Activations: uint8 asymmetric per tensor with an EMA min/max observer (``fake_quantize_per_tensor_affine``).
- ``freeze()`` turns every observed range into Python constants, so the ONNX exporter sees fixed
  QuantizeLinear/DequantizeLinear pairs that onnxruntime fuses into QLinearConv / QGemm, and puts each bias on
  the int32 grid the fused kernel adds it on (``_input_scales``).

The transform works on the building blocks the registry's students use: ``Sequential(Conv, BatchNorm
[, ReLU])`` runs (1-D or 2-D) become ``QConv``; ``Linear`` becomes ``QLinear``; an input quantizer follows ``norm``;
a block with its own ``to_qat()`` method (the causal convolutions of the SED student) converts itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from edgekd.core.errors import ConfigError

__all__ = ["ActQuant", "QConv", "QLinear", "to_qat", "freeze", "is_qat", "calibrate", "fold_conv_bn", "output_step", "weight_scale",
           "fake_quant_disabled", "freeze_observers_from", "DEFAULT_WEIGHT_BITS"]

EMA = 0.01


class ActQuant(nn.Module):
    """uint8 per-tensor fake quantization with an EMA min/max observer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.register_buffer("initialised", torch.tensor(False))
        self.observe = True
        self.frozen: tuple[float, int] | None = None
        self.enabled = True  # False only inside fake_quant_disabled()

    def qparams(self) -> tuple[float, int]:
        lo, hi = min(float(self.lo), 0.0), max(float(self.hi), 0.0)
        scale = max((hi - lo) / 255.0, 1e-8)
        zp = int(round(-lo / scale))
        return scale, min(255, max(0, zp))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self.frozen is not None:
            scale, zp = self.frozen
            return torch.fake_quantize_per_tensor_affine(x, scale, zp, 0, 255)
        if self.observe and self.training or not bool(self.initialised):
            with torch.no_grad():
                lo, hi = x.detach().min(), x.detach().max()
                if not bool(self.initialised):
                    self.lo.copy_(lo)
                    self.hi.copy_(hi)
                    self.initialised.fill_(True)
                elif self.observe:
                    self.lo.mul_(1 - EMA).add_(EMA * lo)
                    self.hi.mul_(1 - EMA).add_(EMA * hi)
        scale, zp = self.qparams()
        return torch.fake_quantize_per_tensor_affine(x, scale, zp, 0, 255)


def fold_conv_bn(conv: nn.Conv1d | nn.Conv2d, bn: nn.BatchNorm1d | nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of ``conv`` with an eval-mode BatchNorm folded in (a plain copy without one)."""
    w = conv.weight.detach().clone()
    b = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(w.shape[0])
    if bn is not None:
        inv = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        w = w * inv.reshape(-1, *[1] * (w.dim() - 1))
        b = (b - bn.running_mean) * inv + bn.bias.detach()
    return w, b


DEFAULT_WEIGHT_BITS = 7


def weight_scale(w: torch.Tensor, bits: int = DEFAULT_WEIGHT_BITS) -> torch.Tensor:
    """Per-output-channel symmetric scale: max |w| / (2 ** (bits - 1) - 1)."""
    return (w.detach().abs().amax(dim=tuple(range(1, w.dim()))) / float(2 ** (bits - 1) - 1)).clamp_min(1e-8)


def _weight_fq(w: torch.Tensor, bits: int, frozen_scale: torch.Tensor | None = None) -> torch.Tensor:
    # the int8 grid: with a 7-bit scale no value reaches past -63..63, so the clamp never acts (and torch's ONNX
    # exporter accepts only the -128..127 form)
    scale = weight_scale(w, bits) if frozen_scale is None else frozen_scale
    zp = torch.zeros(w.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zp, 0, -128, 127)


class QConv(nn.Module):
    """Conv1d or Conv2d with BatchNorm folded in, int8 per-channel weights, optional ReLU, uint8 output.

    ``left_pad`` zero-pads the time axis on the past side first (a causal convolution: time is the last axis of
    a 1-D conv, the one before last of a 2-D conv); ``quantize_input`` adds a uint8 quantizer on the (padded) input
    for inputs that are not already on a quantization grid (after a mean, or after a pad), so that onnxruntime can
    fuse the convolution into QLinearConv.
    """

    def __init__(self, conv: nn.Conv1d | nn.Conv2d, bn: nn.BatchNorm1d | nn.BatchNorm2d | None, relu: bool, *, left_pad: int = 0,
                 quantize_input: bool = False) -> None:
        super().__init__()
        w, b = fold_conv_bn(conv, bn)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(b)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.relu = relu
        self.left_pad = left_pad
        self.in_q = ActQuant() if quantize_input else None
        self.out_q = ActQuant()
        self.frozen_scale: torch.Tensor | None = None
        self.weight_bits = DEFAULT_WEIGHT_BITS  # set by to_qat()
        self.fake_quant = True  # False only inside fake_quant_disabled()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.left_pad:
            x = nn.functional.pad(x, (self.left_pad, 0) if self.weight.dim() == 3 else (0, 0, self.left_pad, 0))
        if self.in_q is not None:
            x = self.in_q(x)
        w = _weight_fq(self.weight, self.weight_bits, self.frozen_scale) if self.fake_quant else self.weight
        conv = nn.functional.conv1d if self.weight.dim() == 3 else nn.functional.conv2d
        y = conv(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.relu:
            y = torch.relu(y)
        return self.out_q(y)


class QLinear(nn.Module):
    """Linear with int8 per-channel weights; quantizes its input and its output (uint8)."""

    def __init__(self, lin: nn.Linear) -> None:
        super().__init__()
        self.weight = nn.Parameter(lin.weight.detach().clone())
        self.bias = nn.Parameter(lin.bias.detach().clone() if lin.bias is not None else torch.zeros(lin.out_features))
        self.in_q = ActQuant()
        self.out_q = ActQuant()
        self.frozen_scale: torch.Tensor | None = None
        self.weight_bits = DEFAULT_WEIGHT_BITS
        self.fake_quant = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = _weight_fq(self.weight, self.weight_bits, self.frozen_scale) if self.fake_quant else self.weight
        return self.out_q(nn.functional.linear(self.in_q(x), w, self.bias))


_CONV = (nn.Conv1d, nn.Conv2d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def _convert(mod: nn.Module) -> nn.Module:
    to_q = getattr(mod, "to_qat", None)
    if callable(to_q):
        return to_q()
    if isinstance(mod, nn.Sequential):
        items = list(mod)
        out: list[nn.Module] = []
        i = 0
        while i < len(items):
            m = items[i]
            if isinstance(m, _CONV):
                bn = items[i + 1] if i + 1 < len(items) and isinstance(items[i + 1], _BN) else None
                j = i + 1 + (bn is not None)
                relu = j < len(items) and isinstance(items[j], nn.ReLU)
                out.append(QConv(m, bn, relu))
                i = j + relu
            else:
                out.append(_convert(m))
                i += 1
        return nn.Sequential(*out)
    if isinstance(mod, nn.Linear):
        return QLinear(mod)
    if isinstance(mod, (*_CONV, *_BN)):
        raise ConfigError(f"QAT: a {type(mod).__name__} outside a Sequential(Conv, BN, ReLU) run or a block with to_qat()")
    for name, child in list(mod.named_children()):
        setattr(mod, name, _convert(child))
    return mod


def to_qat(model: nn.Module, weight_bits: int = DEFAULT_WEIGHT_BITS) -> nn.Module:
    """Return a fake-quantized copy-in-place of a trained float student (eval-mode BN statistics are folded).
    ``weight_bits``: 7 (default, see the module docstring) or 8."""
    if weight_bits not in (7, 8):
        raise ConfigError(f"weight_bits {weight_bits}: give 7 or 8")
    model.eval()
    if not hasattr(model, "norm"):
        raise ConfigError("QAT needs a model with a `norm` input stage")
    model.norm = nn.Sequential(model.norm, ActQuant())  # type: ignore[assignment]
    for name, child in list(model.named_children()):
        if name != "norm":
            setattr(model, name, _convert(child))
    for m in model.modules():
        if isinstance(m, (QConv, QLinear)):
            m.weight_bits = weight_bits
    model.qat = True  # type: ignore[assignment]
    model.weight_bits = weight_bits  # type: ignore[assignment]
    return model


def is_qat(model: nn.Module) -> bool:
    return bool(getattr(model, "qat", False))


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Initialise the observers on a few batches (min/max of the first, EMA after)."""
    model.train()
    for b in batches:
        model(b)
    model.eval()


def freeze_observers_from(first_epoch: int) -> Callable[[nn.Module, int], None]:
    """A ``before_epoch(model, epoch)`` callback that stops every observer from ``first_epoch`` on (the ranges
    then stay fixed while the weights settle)."""

    def before_epoch(model: nn.Module, epoch: int) -> None:
        if epoch >= first_epoch:
            for q in model.modules():
                if isinstance(q, ActQuant):
                    q.observe = False

    return before_epoch


def freeze(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """Fix every activation range and weight scale as constants and put every bias on its int32 grid (call before
    export). ``example``: any one input of the model's shape, run once to find what feeds each layer."""
    for m in model.modules():
        if isinstance(m, ActQuant):
            m.frozen = m.qparams()
            m.observe = False
        elif isinstance(m, (QConv, QLinear)):
            m.frozen_scale = weight_scale(m.weight, m.weight_bits)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    with torch.no_grad():
        for layer, in_scale in _input_scales(model, example).items():
            grid = torch.tensor(in_scale, dtype=torch.float32) * layer.frozen_scale
            layer.bias.copy_(torch.round(layer.bias / grid) * grid)
    return model


def _input_scales(model: nn.Module, example: torch.Tensor) -> dict[QConv | QLinear, float]:
    """The scale of the uint8 input of every QConv / QLinear whose input comes straight from a quantizer (its own,
    or a view of an earlier one's output), found by running ``example`` once.

    An integer kernel adds the bias as int32 on the grid ``input scale x weight scale``; onnxruntime rounds a float
    bias onto it when it fuses ``DQ -> Conv -> Q`` into QLinearConv. Off the grid, that rounding moved each layer by
    up to half an output step, so a 10-layer wake-word DS-CNN's fused kernels ended 3 output steps from its QDQ
    graph (and from the QAT model). On the grid, the QAT model, the QDQ graph and the fused kernels add the same bias.
    A layer fed any other way (none in the registry's students) keeps its float bias."""
    outputs: dict[int, tuple[torch.Tensor, float]] = {}  # data_ptr -> (tensor kept alive, so its memory is not reused; scale)
    found: dict[QConv | QLinear, float] = {}

    def after_quant(mod: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        outputs[out.data_ptr()] = (out, mod.frozen[0])

    def before_layer(mod: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if mod.in_q is not None:
            found[mod] = mod.in_q.frozen[0]
        elif inputs[0].data_ptr() in outputs:  # (a left pad adds zeros, which every uint8 grid holds)
            found[mod] = outputs[inputs[0].data_ptr()][1]

    hooks = [m.register_forward_hook(after_quant) for m in model.modules() if isinstance(m, ActQuant)]
    hooks += [m.register_forward_pre_hook(before_layer) for m in model.modules() if isinstance(m, (QConv, QLinear))]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return found


def output_step(model: nn.Module) -> float:
    """The quantization step of the model's output (one int8 step of the logits)."""
    last = [m for m in model.modules() if isinstance(m, ActQuant)][-1]
    return float(last.qparams()[0])


@contextmanager
def fake_quant_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Run a QAT model as plain float inside the block (used to measure structure, e.g. a receptive field)."""
    acts = [m for m in model.modules() if isinstance(m, ActQuant)]
    convs = [m for m in model.modules() if isinstance(m, (QConv, QLinear))]
    for a in acts:
        a.enabled = False
    for m in convs:
        m.fake_quant = False
    try:
        yield model
    finally:
        for a in acts:
            a.enabled = True
        for m in convs:
            m.fake_quant = True
