"""QAT and int8 export: fake-quant torch vs int8 ONNX, integer kernels in the ORT graph, size, PTQ, bad input."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training extra")
pytest.importorskip("onnx", reason="export extra")

from edgekd.core.errors import ConfigError  # noqa: E402
from edgekd.runtime.detector import load_model  # noqa: E402
from edgekd.runtime.manifest import ModelManifest  # noqa: E402
from edgekd.train.checkpoint import Checkpoint  # noqa: E402

pytestmark = pytest.mark.slow


def test_qat_model_and_int8_onnx_agree_on_the_test_split(tiny_qat_checkpoint: Path, tiny_int8_bundle: Path, tiny_kws_data) -> None:  # type: ignore[no-untyped-def]
    from edgekd.train.qat import freeze

    ck = Checkpoint.load(tiny_qat_checkpoint)
    model = freeze(ck.build(), torch.zeros(1, ck.window_frames, ck.n_mels))
    x = np.concatenate([tiny_kws_data.test.x, tiny_kws_data.validation.x]).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = load_model(tiny_int8_bundle).logits(x)
    assert x.shape[0] >= 20
    assert np.mean(want.argmax(1) == got.argmax(1)) >= 0.99
    step = ModelManifest.load(tiny_int8_bundle).golden["atol"]
    assert np.max(np.abs(want - got)) <= 2.02 * step


def test_onnxruntime_runs_integer_kernels(tiny_int8_bundle: Path) -> None:
    from edgekd.export.int8 import optimized_op_counts

    ops = optimized_op_counts(tiny_int8_bundle / "model.onnx")
    assert ops.get("QLinearConv", 0) + ops.get("ConvInteger", 0) >= 5, ops
    assert ops.get("Conv", 0) == 0, ops  # no float convolution left


def test_int8_bundle_is_at_least_3x_smaller(tiny_int8_bundle: Path, tiny_bundle: Path) -> None:
    fp32 = (tiny_bundle / "model.onnx").stat().st_size
    int8 = (tiny_int8_bundle / "model.onnx").stat().st_size
    assert fp32 / int8 >= 3.0, (fp32, int8)
    m = ModelManifest.load(tiny_int8_bundle)
    assert m.quantization == "int8-qat" and 0 < m.golden["atol"] < 1.0


def test_golden_and_stream_selfcheck_of_int8_bundle(tiny_int8_bundle: Path) -> None:
    import json

    from edgekd.runtime.wav import load_audio

    m = ModelManifest.load(tiny_int8_bundle)
    det = load_model(tiny_int8_bundle)
    assert np.allclose(det.logits(np.load(tiny_int8_bundle / m.golden["input"])), np.load(tiny_int8_bundle / m.golden["output"]),
                       atol=m.golden["atol"], rtol=0)
    want = json.loads((tiny_int8_bundle / "golden" / "detections.json").read_text())
    s = det.create_stream()
    got = [d.to_dict() for d in s.accept_waveform(load_audio(tiny_int8_bundle / "golden" / "clip.wav", 16000))]
    assert [(d["label"], d["t_ms"]) for d in got] == [(d["label"], d["t_ms"]) for d in want]


def test_ptq_baseline_exports_int8(tiny_checkpoint: Path, tiny_data: Path, tmp_path: Path) -> None:
    from edgekd.export.int8 import calibration_features, optimized_op_counts
    from edgekd.export.onnx import export_onnx

    ck = Checkpoint.load(tiny_checkpoint)
    calib = calibration_features(tiny_data, ck.frontend, ck.window_frames, n=32)
    m = export_onnx(tiny_checkpoint, tmp_path / "ptq", ptq_calibration=calib)
    assert m.quantization == "int8-ptq"
    assert optimized_op_counts(tmp_path / "ptq" / "model.onnx").get("QLinearConv", 0) >= 5
    load_model(tmp_path / "ptq").logits(calib[:4])


def test_int8_export_of_a_float_checkpoint_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from edgekd.export.onnx import export_onnx

    with pytest.raises(ConfigError, match="edgekd train qat"):
        export_onnx(tiny_checkpoint, tmp_path / "x", int8=True)
    assert not (tmp_path / "x").exists()


def test_qat_checkpoint_needs_int8_flag(tiny_qat_checkpoint: Path, tmp_path: Path) -> None:
    from edgekd.export.onnx import export_onnx

    with pytest.raises(ConfigError, match="--int8"):
        export_onnx(tiny_qat_checkpoint, tmp_path / "x")


def test_bn_folding_keeps_the_float_function(tiny_checkpoint: Path) -> None:
    from edgekd.train.qat import fake_quant_disabled, to_qat

    float_model = Checkpoint.load(tiny_checkpoint).build()
    x = torch.randn(4, 98, 40) * 3 - 5
    with torch.no_grad():
        want = float_model(x)
        q = to_qat(Checkpoint.load(tiny_checkpoint).build())
        with fake_quant_disabled(q):  # with quantization bypassed, folding must not change the function
            got = q(x)
    assert torch.allclose(got, want, atol=1e-4)


def test_qat_with_soft_targets_distils_and_checks_their_rows(tiny_kws_data, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """QAT on teacher logits computed elsewhere (the ONNX wake-word teacher's path): the checkpoint says distilled;
    a row-count mismatch is one clear error."""
    from edgekd.train.pipeline import train_qat

    n, c = len(tiny_kws_data.train), len(tiny_kws_data.train.labels)
    soft = np.random.default_rng(0).standard_normal((n, c)).astype(np.float32)
    ck = train_qat(tiny_kws_data, tiny_checkpoint, tmp_path / "q.pt", epochs=1, threads=1, progress=False, soft_targets=soft)
    assert ck.config["distilled"] and ck.config["qat"] and Checkpoint.load(tmp_path / "q.pt").is_qat
    with pytest.raises(ConfigError, match="soft targets for 3 rows"):
        train_qat(tiny_kws_data, tiny_checkpoint, tmp_path / "r.pt", epochs=1, threads=1, progress=False, soft_targets=soft[:3])
    assert not (tmp_path / "r.pt").exists()


def test_fused_integer_kernels_equal_the_qdq_graph(tiny_int8_bundle: Path, tiny_kws_data) -> None:  # type: ignore[no-untyped-def]
    """Weights on a 7-bit scale (|q| <= 63): onnxruntime's fused u8s8 kernels, which on x86 without VNNI add pairs
    of uint8 x int8 products in int16, cannot saturate, so the optimized graph gives the unfused QDQ graph's
    answer to within one output step of rounding, also on loud input that drives every activation to its top."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from edgekd.export.verify import output_quant_step

    path = tiny_int8_bundle / "model.onnx"
    g = onnx.load(str(path)).graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    weights = [consts[n.input[0]] for n in g.node if n.op_type == "DequantizeLinear" and consts.get(n.input[0], np.zeros(0)).dtype == np.int8]
    weights += [numpy_helper.to_array(i) for i in g.initializer if i.data_type == onnx.TensorProto.INT8]
    assert weights and max(int(np.abs(w.astype(int)).max()) for w in weights) <= 63
    loud = np.random.default_rng(0).uniform(0, 8, (8,) + tiny_kws_data.test.x.shape[1:]).astype(np.float32)
    x = np.concatenate([tiny_kws_data.test.x.astype(np.float32), loud])
    outs = []
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {sess.get_inputs()[0].name: x})[0])
    step = output_quant_step(path)
    assert float(np.abs(outs[0] - outs[1]).max()) <= 1.01 * step


def test_every_bias_lies_on_the_grid_the_integer_kernel_adds_it_on(tiny_int8_bundle: Path) -> None:
    """A fused QLinearConv / QGemm adds its bias as int32 in steps of input scale x weight scale. A float bias off
    that grid is rounded by onnxruntime and not by the QAT model or the QDQ graph: that put a 10-layer wake-word
    student's fused kernels 3 output steps from its QAT model. ``freeze`` snaps each bias onto the grid."""
    import onnx

    from edgekd.export.graph_stats import constant_map

    g = onnx.load(str(tiny_int8_bundle / "model.onnx")).graph
    consts = constant_map(g)
    producer = {o: n for n in g.node for o in n.output}

    def dequantize_scale(name: str) -> np.ndarray:
        n = producer[name]
        while n.op_type != "DequantizeLinear":  # through the Unsqueeze / Reshape views in front of a layer
            n = producer[n.input[0]]
        return consts[n.input[1]].astype(np.float32)

    layers = [n for n in g.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 2]
    assert len(layers) >= 5
    for n in layers:
        grid = dequantize_scale(n.input[0]).reshape(-1)[0] * dequantize_scale(n.input[1]).reshape(-1)
        steps = consts[n.input[2]].astype(np.float64) / grid
        slack = 1e-3 + 4 * np.finfo(np.float32).eps * np.abs(steps)  # a float32 bias holds k * grid to its own precision
        assert np.all(np.abs(steps - np.round(steps)) <= slack), n.op_type


def test_int8_without_fine_tuning_keeps_the_float_weights(tiny_kws_data, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``epochs=0``: the float student's weights untouched (BatchNorm folded), ranges observed over every training
    row; it exports as int8 like a fine-tuned QAT checkpoint, and with rounding bypassed it is the float model."""
    from edgekd.export.onnx import export_onnx
    from edgekd.train.pipeline import train_qat
    from edgekd.train.qat import fake_quant_disabled

    ck = train_qat(tiny_kws_data, tiny_checkpoint, tmp_path / "q.pt", epochs=0, threads=1, progress=False)
    assert ck.config["qat"] and ck.metrics["qat_train_steps"] == 0
    model = Checkpoint.load(tmp_path / "q.pt").build()
    x = torch.from_numpy(tiny_kws_data.test.x[:8].astype(np.float32))
    with torch.no_grad(), fake_quant_disabled(model):
        got = model(x)
        want = Checkpoint.load(tiny_checkpoint).build().eval()(x)
    assert torch.allclose(got, want, atol=1e-4)
    man = export_onnx(tmp_path / "q.pt", tmp_path / "b", int8=True)
    assert man.quantization == "int8-qat"


def test_qat_balances_a_plain_student_by_its_classifier_bias(tiny_kws_data, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``balanced_classifier``: the logits move by exactly minus the training labels' log prior (the tiny set has more
    _unknown_ rows than rows per keyword); ``train_qat(balance_labels=True)`` starts from it and keeps the balanced loss."""
    from edgekd.train.distill import label_log_prior
    from edgekd.train.pipeline import balanced_classifier, train_qat

    src = Checkpoint.load(tiny_checkpoint)
    bal = balanced_classifier(src, tiny_kws_data.train.y, tiny_kws_data.train.labels)
    prior = label_log_prior(torch.from_numpy(tiny_kws_data.train.y), len(src.labels))
    assert prior.max() - prior.min() > 0.5
    x = torch.from_numpy(tiny_kws_data.test.x[:8].astype(np.float32))
    with torch.no_grad():
        moved = bal.build()(x) - src.build()(x)
    assert torch.allclose(moved, -prior.expand_as(moved), atol=1e-5)
    assert bal.config["balance_labels"] is True and not src.config.get("balance_labels")
    # the accuracies of training are the unbalanced model's: renamed, never passed off as the balanced one's
    assert "test_accuracy_torch" not in bal.metrics and "val_accuracy" not in bal.metrics
    assert bal.metrics["test_accuracy_torch_before_balancing"] == src.metrics["test_accuracy_torch"]
    assert bal.metrics["params"] == src.metrics["params"]
    ck = train_qat(tiny_kws_data, tiny_checkpoint, tmp_path / "q.pt", epochs=0, threads=1, progress=False, balance_labels=True)
    assert ck.config["balance_labels"] is True and ck.config["float_config"]["balance_labels"] is True
    # its float score is the balanced float model's, scored on the test rows
    want = float(np.mean(bal.build()(torch.from_numpy(tiny_kws_data.test.x.astype(np.float32))).argmax(-1).numpy() == tiny_kws_data.test.y))
    assert ck.metrics["float_test_accuracy_torch"] == pytest.approx(want)
    assert ck.provenance["balanced_after_training"] is True
    with pytest.raises(ConfigError, match="a QAT checkpoint"):
        balanced_classifier(ck, tiny_kws_data.train.y, tiny_kws_data.train.labels)


def test_train_balance_command_moves_the_logits_by_the_clip_prior(tiny_kws_data, tiny_checkpoint: Path, tiny_data: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``edgekd train balance``: the prior of the training clips (each clip has as many views, so the rows' prior is
    the same); a file that is not a checkpoint is one line, and nothing is written."""
    from typer.testing import CliRunner

    from edgekd.cli import app
    from edgekd.train.distill import label_log_prior

    out = tmp_path / "bal.pt"
    res = CliRunner().invoke(app, ["train", "balance", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(out)])
    assert res.exit_code == 0, res.output
    src, bal = Checkpoint.load(tiny_checkpoint), Checkpoint.load(out)
    x = torch.from_numpy(tiny_kws_data.test.x[:4].astype(np.float32))
    with torch.no_grad():
        moved = bal.build()(x) - src.build()(x)
    prior = label_log_prior(torch.from_numpy(tiny_kws_data.train.y), len(src.labels))
    assert torch.allclose(moved, -prior.expand_as(moved), atol=1e-5) and bal.config["balance_labels"] is True
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    res = CliRunner().invoke(app, ["train", "balance", str(tmp_path / "bad.pt"), "--data", str(tiny_data), "--out", str(tmp_path / "b2.pt")])
    assert res.exit_code == 2 and not (tmp_path / "b2.pt").exists()
