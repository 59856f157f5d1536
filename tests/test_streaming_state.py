"""Streaming-state models: one hop of new frames + explicit state gives the whole-window model's answer."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="training extra")

import edgekd  # noqa: E402
from edgekd.core.errors import ConfigError  # noqa: E402
from edgekd.runtime.manifest import ModelManifest  # noqa: E402
from edgekd.runtime.wav import load_audio  # noqa: E402

pytestmark = pytest.mark.slow


def _run(det: edgekd.Detector, x: np.ndarray, chunk: int = 1280) -> tuple[list, np.ndarray]:
    s = det.create_stream()
    logits: list[np.ndarray] = []
    s.on_inference = lambda t_ms, out: logits.append(out.copy())
    dets = [d for i in range(0, x.shape[0], chunk) for d in s.accept_waveform(x[i : i + chunk])]
    return dets, np.array(logits)


def test_streaming_logits_and_detections_equal_the_whole_window(tiny_stream_bundle: Path) -> None:
    x = load_audio(tiny_stream_bundle / "golden" / "clip.wav", 16000)
    stream_det = edgekd.load_model(tiny_stream_bundle, mode="stream")
    whole_det = edgekd.load_model(tiny_stream_bundle, mode="whole")
    assert stream_det.mode == "stream" and whole_det.mode == "whole"
    d_s, l_s = _run(stream_det, x)
    d_w, l_w = _run(whole_det, x)
    assert l_s.shape == l_w.shape and l_s.shape[0] == int(x.shape[0] / 16000 / 0.08)
    assert np.max(np.abs(l_s - l_w)) <= 1e-5
    assert [(d.label, d.t_ms) for d in d_s] == [(d.label, d.t_ms) for d in d_w]


def test_streaming_is_chunk_size_invariant_and_reset_works(tiny_stream_bundle: Path) -> None:
    det = edgekd.load_model(tiny_stream_bundle)
    x = load_audio(tiny_stream_bundle / "golden" / "clip.wav", 16000)
    a = _run(det, x, 160)[1]
    b = _run(det, x, 16000)[1]
    assert np.array_equal(a, b)


def test_manifest_and_files(tiny_stream_bundle: Path) -> None:
    m = ModelManifest.load(tiny_stream_bundle)
    st = m.streaming
    assert st["hop_frames"] == 8 and {"model_stream.onnx", "state_init.npz"} <= set(m.files)
    # a hop computes its new frames through every layer; the whole window computes 98 frames plus each layer's context
    whole, hop = m.provenance["graph_macs_per_inference"], st["hop_frames"]
    assert whole * hop / m.window_frames <= st["graph_macs_per_hop"] <= whole * hop / 98
    from edgekd.runtime.selftest import selftest

    assert all(c.ok for c in selftest(tiny_stream_bundle))


def test_stride_must_be_whole_frames(tiny_stream_bundle: Path) -> None:
    with pytest.raises(ConfigError, match="multiple of 10 ms"):
        edgekd.load_model(tiny_stream_bundle, postprocess={"stride_ms": 45})


@pytest.mark.parametrize("stride_ms", [10, 40, 160])
def test_any_stride_streams_like_the_whole_window(tiny_stream_bundle: Path, stride_ms: int) -> None:
    # the streaming graph takes any number of new frames per call: the stride stays a run-time setting
    x = load_audio(tiny_stream_bundle / "golden" / "clip.wav", 16000)
    pp = {"stride_ms": stride_ms, "smooth_ms": 160}
    stream_det = edgekd.load_model(tiny_stream_bundle, mode="stream", postprocess=pp)
    d_s, l_s = _run(stream_det, x)
    d_w, l_w = _run(edgekd.load_model(tiny_stream_bundle, mode="whole", postprocess=pp), x)
    assert stream_det.mode == "stream" and l_s.shape == l_w.shape and l_s.shape[0] == (1 + (x.shape[0] - 480) // 160) // (stride_ms // 10)
    assert np.max(np.abs(l_s - l_w)) <= 1e-5
    assert [(d.label, d.t_ms) for d in d_s] == [(d.label, d.t_ms) for d in d_w]
    st = stream_det.streaming
    assert st is not None and stream_det.macs_per_inference == st.graph_macs_per_hop * (stride_ms // 10) // st.hop_frames
    edgekd.load_model(tiny_stream_bundle, postprocess={"stride_ms": 40}, mode="whole")  # fine without the state model


def test_stream_mode_needs_a_streaming_bundle(shipped_bundle: Path) -> None:
    with pytest.raises(ConfigError, match="--mode whole"):
        edgekd.load_model(shipped_bundle, mode="stream")


def test_int8_streaming_graph_equals_the_int8_whole_window(tiny_stream_int8_bundle: Path) -> None:
    from edgekd.export.verify import output_quant_step

    m = ModelManifest.load(tiny_stream_int8_bundle)
    assert m.quantization == "int8-qat" and m.streaming["model_file"] == "model_stream.onnx"
    x = load_audio(tiny_stream_int8_bundle / "golden" / "clip.wav", 16000)
    stream_det = edgekd.load_model(tiny_stream_int8_bundle, mode="stream", postprocess={"threshold": 0.15})
    whole_det = edgekd.load_model(tiny_stream_int8_bundle, mode="whole", postprocess={"threshold": 0.15})
    d_s, l_s = _run(stream_det, x)
    d_w, l_w = _run(whole_det, x)
    assert l_s.shape == l_w.shape and l_s.shape[0] > 10
    step = output_quant_step(tiny_stream_int8_bundle / "model_stream.onnx")
    assert np.max(np.abs(l_s - l_w)) <= 1.01 * step  # within one step of the output quantizer
    assert [(d.label, d.t_ms) for d in d_s] == [(d.label, d.t_ms) for d in d_w]


def test_int8_states_cross_the_boundary_as_uint8_and_change_no_logit(tiny_stream_int8_bundle: Path, tmp_path: Path) -> None:
    from edgekd.export.onnx import export_onnx
    from edgekd.runtime.backends.onnx import OnnxBackend

    st = ModelManifest.load(tiny_stream_int8_bundle).kws_streaming
    assert st is not None
    graph = {t.name: t.dtype for t in OnnxBackend(tiny_stream_int8_bundle / st.model_file).input_specs}
    quantized = [x for x in st.states if x.dtype == "uint8"]
    assert len(quantized) >= len(st.states) - 1  # every state but the float pooled one
    assert all(graph[x.input] == x.dtype for x in st.states)
    with np.load(tiny_stream_int8_bundle / st.init) as z:
        assert all(str(z[x.input].dtype) == x.dtype for x in st.states)
    # the same QAT checkpoint with float32 states at the boundary in torch's NCHW layout (neither rewrite): the same
    # logits, bit for bit
    floats = tmp_path / "float-states"
    export_onnx(tiny_stream_int8_bundle.parent / "q.pt", floats, int8=True, postprocess={"stride_ms": 80}, float_states=True,
                channels_last=False)
    plain = ModelManifest.load(floats).kws_streaming
    assert plain is not None and all(x.dtype == "float32" for x in plain.states)
    # the shipped form passes each 4-D state channels-last: (N, C, T, F) -> (N, T, F, C)
    four_d = [(a.shape, b.shape) for a, b in zip(plain.states, st.states, strict=True) if len(a.shape) == 4]
    assert four_d and all(b == (a[0], a[2], a[3], a[1]) for a, b in four_d)
    # ... so onnxruntime (channels-last int8 convolutions) runs fewer Transposes per hop, and no dead dequantization
    from edgekd.export.int8 import optimized_op_counts

    ran = optimized_op_counts(tiny_stream_int8_bundle / st.model_file, layout=True)
    ran_plain = optimized_op_counts(floats / plain.model_file, layout=True)
    assert ran.get("Transpose", 0) <= 2 < ran_plain.get("Transpose", 0)
    import onnx

    g = onnx.load(str(tiny_stream_int8_bundle / st.model_file)).graph
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    assert all(any(o in used for o in n.output) for n in g.node)
    x = load_audio(tiny_stream_int8_bundle / "golden" / "clip.wav", 16000)
    a = _run(edgekd.load_model(tiny_stream_int8_bundle, mode="stream"), x)[1]
    b = _run(edgekd.load_model(floats, mode="stream"), x)[1]
    assert a.shape == b.shape and a.shape[0] > 10 and np.array_equal(a, b)


def test_a_state_of_the_wrong_type_is_refused(tiny_stream_int8_bundle: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from edgekd.core.errors import BundleError

    b = tmp_path / "b"
    shutil.copytree(tiny_stream_int8_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    m["streaming"]["states"][0]["dtype"] = "float32"  # the graph and state_init.npz say uint8
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="state_0"):
        edgekd.load_model(b, mode="stream")


def test_int8_streaming_at_twice_the_hop_equals_the_whole_window(tiny_stream_int8_bundle: Path) -> None:
    from edgekd.export.verify import output_quant_step

    x = load_audio(tiny_stream_int8_bundle / "golden" / "clip.wav", 16000)
    pp = {"stride_ms": 160, "threshold": 0.15}
    d_s, l_s = _run(edgekd.load_model(tiny_stream_int8_bundle, mode="stream", postprocess=pp), x)
    d_w, l_w = _run(edgekd.load_model(tiny_stream_int8_bundle, mode="whole", postprocess=pp), x)
    assert l_s.shape == l_w.shape and l_s.shape[0] > 5
    assert np.max(np.abs(l_s - l_w)) <= 1.01 * output_quant_step(tiny_stream_int8_bundle / "model_stream.onnx")
    assert [(d.label, d.t_ms) for d in d_s] == [(d.label, d.t_ms) for d in d_w]


@pytest.mark.parametrize("chunk", [160, 16000])  # each against 1280 samples
def test_int8_streaming_is_chunk_size_invariant(tiny_stream_int8_bundle: Path, chunk: int) -> None:
    det = edgekd.load_model(tiny_stream_int8_bundle)
    assert det.mode == "stream"
    x = load_audio(tiny_stream_int8_bundle / "golden" / "clip.wav", 16000)
    assert np.array_equal(_run(det, x, chunk)[1], _run(det, x, 1280)[1])


def test_int8_streaming_graph_runs_integer_kernels_and_passes_selftest(tiny_stream_int8_bundle: Path) -> None:
    from edgekd.export.int8 import optimized_op_counts
    from edgekd.runtime.selftest import selftest

    ops = optimized_op_counts(tiny_stream_int8_bundle / "model_stream.onnx")
    whole = optimized_op_counts(tiny_stream_int8_bundle / "model.onnx")
    assert ops.get("QLinearConv", 0) == whole["QLinearConv"] > 0 and "Conv" not in ops  # every conv of a hop is integer
    assert all(c.ok for c in selftest(tiny_stream_int8_bundle)), [c.line() for c in selftest(tiny_stream_int8_bundle)]


def test_tuning_a_streaming_bundle_tries_one_two_and_four_hops(tiny_stream_bundle: Path, tiny_data: Path) -> None:
    from edgekd.eval.tune import sweep_postprocess
    from edgekd.runtime.detector import load_kws

    res = sweep_postprocess(load_kws(tiny_stream_bundle), tiny_data, split="all", max_clips=60)
    assert {r["stride_ms"] for r in res.table} == {80, 160, 320} and res.stride_ms in (80, 160, 320)
    assert all(r["smooth_ms"] >= r["stride_ms"] for r in res.table)
