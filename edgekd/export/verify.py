"""Every check an export makes of what it wrote, with every tolerance, in one place.

An export is refused (``ConfigError``) when the graph it wrote does not give the model's answer; the tolerance it
stores in the bundle's golden block is what ``edgekd selftest`` then demands of the runtime on a board.

- fp32: ONNX within ``FP32_EXPORT_ATOL`` of torch at export; golden outputs (and the streaming graph against the
  whole window) within ``FP32_GOLDEN_ATOL``.
- int8 (QAT): tolerances count steps of the output quantizer (``output_quant_step``). KWS: ONNX within
  ``KWS_INT8_EXPORT_STEPS`` of the QAT model (integer kernels round a few values differently from float fake
  quantization; global pooling averages it out). Measured on a trained 10-layer wake-word DS-CNN, 800 windows:
  1 step on 1% of the outputs, none further, once ``train.qat.freeze`` puts each bias on its int32 grid; before
  that, onnxruntime's own rounding of the float biases left 87% of the outputs off and the largest 3 steps off.
  SED: ``SED_INT8_STEPS``, measured before the bias fix: with no global pooling, ten layers on, half the frame
  logits differed by a step and the largest by 4 (the test's SED student: 4.9% of frame logits a step off before
  the fix, 0.4% after); a broken export misses by far more.
  Golden outputs on another CPU: ``INT8_GOLDEN_STEPS`` (the same answer is exact in practice).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError

__all__ = ["FP32_EXPORT_ATOL", "FP32_GOLDEN_ATOL", "KWS_INT8_EXPORT_STEPS", "SED_INT8_STEPS", "INT8_GOLDEN_STEPS", "output_quant_step",
           "int8_atol", "check_export"]

FP32_EXPORT_ATOL = 1e-3
FP32_GOLDEN_ATOL = 1e-4
KWS_INT8_EXPORT_STEPS = 2
SED_INT8_STEPS = 8
INT8_GOLDEN_STEPS = 1
_ROUNDING = 0.01  # of a step: float rounding of the scale itself


def int8_atol(steps: int, step: float) -> float:
    """``steps`` output-quantizer steps of size ``step``, with room for the scale's own float rounding."""
    return (steps + _ROUNDING) * step


def output_quant_step(path: Path) -> float:
    """Scale of the DequantizeLinear that produces the model output (one int8 step of the logits)."""
    import onnx

    from edgekd.export.graph_stats import constant_map

    g = onnx.load(str(path)).graph
    consts = constant_map(g)
    producer = {o: n for n in g.node for o in n.output}
    name = g.output[0].name
    while name in producer:
        n = producer[name]
        if n.op_type == "DequantizeLinear":
            return float(np.max(consts[n.input[1]]))
        if n.op_type not in ("Identity", "Reshape", "Flatten", "Squeeze", "Transpose"):
            break
        name = n.input[0]
    raise ConfigError(f"{path}: the output is not produced by a DequantizeLinear; not an int8 QDQ model")


def check_export(got: np.ndarray, want: np.ndarray, atol: float | None, what: str = "ONNX graph") -> float:
    """The largest difference between the exported ``got`` and the model's ``want``; an export further than ``atol``
    is broken (``None``: nothing to match, as for post-training quantization, whose accuracy is measured instead)."""
    err = float(np.max(np.abs(got - want)))
    if atol is not None and err > atol:
        raise ConfigError(f"the exported {what} differs from the model it came from by {err:.3g} (tolerance {atol:.3g}); export is broken")
    return err
