"""QAT of the SED student: the transform keeps the float function, the int8 ONNX matches the QAT model, every conv
runs as QLinearConv, and the distillation loss handles unlabelled (transfer) samples."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.runtime.sed_post import SedPostprocessConfig

LABELS = ["alarm", "bell", "door", "knock"]


def _trained_like_student() -> torch.nn.Module:
    """A sed-causal-cnn with non-trivial BatchNorm statistics (as after training), in eval mode."""
    from edgekd.train.models import build_model

    torch.manual_seed(0)
    m = build_model("sed-causal-cnn", n_labels=len(LABELS), n_mels=40)
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(4, 400, 40) * 2 + 1)
    return m.eval()


def test_qat_transform_without_rounding_is_the_float_model() -> None:
    from edgekd.train.qat import QConv, calibrate, fake_quant_disabled, to_qat

    m = _trained_like_student()
    x = torch.randn(2, 400, 40)
    with torch.no_grad():
        ref = m(x)
        q = to_qat(copy.deepcopy(m))
        calibrate(q, [x])
        assert sum(isinstance(k, QConv) for k in q.modules()) == 10  # every conv of the student, BatchNorm folded in
        with fake_quant_disabled(q):
            torch.testing.assert_close(q(x), ref, atol=1e-5, rtol=1e-4)
        rounded = q(x)
    assert 0 < float((rounded - ref).abs().max()) < 0.2 * float(ref.abs().max())  # rounding is on again, and small
    from edgekd.train.profile import count_macs

    assert count_macs(q, (1, 100, 40)) == count_macs(m, (1, 100, 40)) > 0  # the report's MACs column counts QConv too


def test_int8_export_matches_the_qat_model_and_fuses_every_conv(tmp_path: Path) -> None:
    import onnxruntime as ort

    from edgekd.export.int8 import optimized_op_counts
    from edgekd.export.sed import export_sed
    from edgekd.train.qat import calibrate, output_step, to_qat

    m = _trained_like_student()
    x = torch.randn(4, 400, 40)
    export_sed(m, LABELS, tmp_path / "fp32", name="f", arch="sed-causal-cnn", postprocess=SedPostprocessConfig())
    q = to_qat(copy.deepcopy(m))
    calibrate(q, [x])
    man = export_sed(q, LABELS, tmp_path / "int8", name="q", arch="sed-causal-cnn", postprocess=SedPostprocessConfig())
    assert man.quantization == "int8-qat"
    fp32_ctx = json.loads((tmp_path / "fp32" / "manifest.json").read_text())["streaming"]["context_frames"]
    assert man.streaming["context_frames"] == fp32_ctx  # receptive field measured without rounding: same as float
    ops = optimized_op_counts(tmp_path / "int8" / "model.onnx")
    assert ops.get("QLinearConv") == 10 and "Conv" not in ops, ops
    assert (tmp_path / "int8" / "model.onnx").stat().st_size < 0.5 * (tmp_path / "fp32" / "model.onnx").stat().st_size
    sess = ort.InferenceSession(str(tmp_path / "int8" / "model.onnx"), providers=["CPUExecutionProvider"])
    feats = np.random.default_rng(1).standard_normal((1, 1000, 40)).astype(np.float32)  # another length than at export
    got = sess.run(None, {"features": feats})[0]
    with torch.no_grad():
        want = q(torch.from_numpy(feats)).numpy()
    assert got.shape == want.shape == (1, 250, len(LABELS))
    assert float(np.abs(got - want).max()) <= 2.01 * output_step(q)


def _bce(z: float, t: float) -> float:
    p = 1 / (1 + math.exp(-z))
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


def test_kd_loss_takes_only_the_soft_term_for_unlabelled_samples() -> None:
    from edgekd.train.distill import sed_kd_loss

    zs = torch.tensor([[[1.5]], [[-0.5]]])
    zt = torch.tensor([[[3.0]], [[1.0]]])
    y = torch.tensor([[[1.0]], [[0.0]]])  # the second sample's label is a placeholder: it is unlabelled
    t, a = 2.0, 0.25
    soft = [_bce(1.5 / t, 1 / (1 + math.exp(-3.0 / t))) * t * t, _bce(-0.5 / t, 1 / (1 + math.exp(-1.0 / t))) * t * t]
    want = ((a * soft[0] + (1 - a) * _bce(1.5, 1.0)) + soft[1]) / 2
    got = sed_kd_loss(zs, zt, y, a, t, labelled=torch.tensor([True, False]))
    assert float(got) == pytest.approx(want, rel=1e-6)
    assert float(sed_kd_loss(zs, zt, y, a, t)) != pytest.approx(want, rel=1e-3)  # without the mask the placeholder counts


def test_a_transfer_set_needs_a_teacher() -> None:
    from edgekd.train.sed import SedSplit, train_sed

    empty = SedSplit([], [], [], [], {})
    with pytest.raises(ValueError, match="needs a teacher"):
        train_sed("sed-causal-cnn", empty, empty, LABELS, transfer=([], []))
