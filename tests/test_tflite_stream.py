"""The LiteRT streaming graph: made from a bundle's int8 ONNX streaming graph, it steps like it (hop by hop within a
few output steps, the same detections), feeds its int8 states back exactly, is chunk-size invariant, and is refused
for anything but an int8 DS-CNN streaming graph with one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.core.errors import ConfigError
from edgekd.runtime.detector import load_model
from edgekd.runtime.wav import load_audio

litert = pytest.importorskip("ai_edge_litert", reason='LiteRT runtime: the "litert" extra (make test installs it)')

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "models" / "kws12-dscnn-stream64-kd-int8"


def _dets(det, x: np.ndarray, chunk: int = 1280) -> list:  # type: ignore[no-untyped-def]
    s = det.create_stream()
    return [(d.label, d.t_ms) for i in range(0, x.shape[0], chunk) for d in s.accept_waveform(x[i : i + chunk])]


@pytest.fixture(scope="module")
def lite_bundle(tiny_stream_int8_bundle: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny int8 streaming bundle with model.tflite added from its QAT checkpoint: the streaming twin comes along."""
    pytest.importorskip("tensorflow", reason='TFLite converter: the "tflite" extra (make test installs it)')
    from edgekd.export.int8 import calibration_features
    from edgekd.export.tflite import add_tflite_to_bundle
    from edgekd.runtime.manifest import ModelManifest

    b = tmp_path_factory.mktemp("lite-stream") / "b"
    shutil.copytree(tiny_stream_int8_bundle, b)
    m = ModelManifest.load(b)
    add_tflite_to_bundle(tiny_stream_int8_bundle.parent / "q.pt", b, calibration=calibration_features(tiny_data, m.frontend, m.window_frames, n=32))
    return b


def _steppers(bundle: Path, stride_ms: int):  # type: ignore[no-untyped-def]
    pp = {"stride_ms": stride_ms}
    return [load_model(bundle, backend=b, postprocess=pp).state_stepper() for b in ("onnx", "litert")]


@pytest.mark.slow
def test_export_adds_the_twin_and_it_steps_like_the_onnx_graph(lite_bundle: Path) -> None:
    from edgekd.export.tflite_stream import STREAM_PARITY_STEPS
    from edgekd.runtime.manifest import ModelManifest

    m = ModelManifest.load(lite_bundle)
    st = m.kws_streaming
    assert st is not None and st.tflite_model_file in m.files and st.tflite_init in m.files
    det = load_model(lite_bundle, backend="litert")
    assert det.mode == "stream" and det.step_backend is not None and det.step_backend.name == "litert"
    out_step = float(det.step_backend._out[st.logits_output]["quantization"][0])  # one int8 step of the logits (= ONNX's)
    windows = np.load(lite_bundle / m.golden_block.input)
    worst, agree, n = 0.0, 0, 0
    for stride_ms in (10, 80):  # one frame per call, and the bundle's stride: the free frame axis serves both
        onnx, lite = _steppers(lite_bundle, stride_ms)
        for w in windows:
            onnx.reset()
            lite.reset()
            k = onnx.frames.shape[1]
            for t in range(0, w.shape[0] - k + 1, k):
                onnx.frames[0] = w[t : t + k]
                lite.frames[0] = w[t : t + k]
                a, b = onnx.step().copy(), lite.step()
                worst = max(worst, float(np.max(np.abs(a - b))))
                agree += int(a.argmax() == b.argmax())
                n += 1
    assert n > 20
    assert worst <= STREAM_PARITY_STEPS * out_step * (1 + 1e-5), worst / out_step
    assert agree / n >= 0.95


@pytest.mark.slow
def test_every_state_output_carries_its_inputs_quantization(lite_bundle: Path) -> None:
    from edgekd.runtime.backends.litert import LiteRTBackend
    from edgekd.runtime.manifest import ModelManifest

    st = ModelManifest.load(lite_bundle).kws_streaming
    assert st is not None
    be = LiteRTBackend(lite_bundle / st.tflite_model_file)
    for x in st.states:
        i, o = be._in[x.input], be._out[x.output]
        assert np.dtype(i["dtype"]) == np.int8 and np.dtype(o["dtype"]) == np.int8
        assert i["quantization"] == o["quantization"], x.input


@pytest.mark.slow
def test_selftest_and_golden_stream_on_litert(lite_bundle: Path) -> None:
    from edgekd.runtime.selftest import selftest

    checks = selftest(lite_bundle, backend="litert")
    assert [c.name for c in checks if not c.ok] == []
    assert "golden stream" in [c.name for c in checks]


def test_default_bundle_streams_on_litert_with_the_onnx_detections() -> None:
    x = load_audio(DEFAULT / "golden" / "clip.wav", 16000)
    lite = load_model(DEFAULT, backend="litert")
    assert lite.mode == "stream"
    want = _dets(load_model(DEFAULT, backend="onnx"), x)
    assert len(want) >= 5
    assert _dets(lite, x) == want


@pytest.mark.parametrize("chunk", [160, 16000])  # each against 1280 samples
def test_default_litert_stream_is_chunk_size_invariant(chunk: int) -> None:
    det = load_model(DEFAULT, backend="litert")
    x = load_audio(DEFAULT / "golden" / "clip.wav", 16000)
    logs: dict[int, list[np.ndarray]] = {}
    for c in (1280, chunk):
        s = det.create_stream()
        got: list[np.ndarray] = []
        s.on_inference = lambda t, lg, got=got: got.append(lg.copy())
        for i in range(0, x.shape[0], c):
            s.accept_waveform(x[i : i + c])
        logs[c] = got
    assert len(logs[1280]) == len(logs[chunk]) > 20
    assert np.array_equal(np.stack(logs[1280]), np.stack(logs[chunk]))


def test_a_float_streaming_bundle_is_refused(tiny_stream_bundle: Path) -> None:
    from edgekd.export.tflite_stream import add_tflite_stream_to_bundle

    with pytest.raises(ConfigError, match="no int8 streaming-state graph"):
        add_tflite_stream_to_bundle(tiny_stream_bundle, calibration=np.zeros((1, 115, 40), np.float32))


def test_a_graph_of_another_family_is_refused(tiny_stream_int8_bundle: Path) -> None:
    from edgekd.export.tflite_stream import read_stream_graph

    with pytest.raises(ConfigError, match="not an int8 dscnn-stream graph"):
        read_stream_graph(tiny_stream_int8_bundle / "model.onnx")  # the whole-window graph: no states, no pool


def test_cli_refuses_a_bundle_without_an_int8_stream_in_one_line(tiny_stream_bundle: Path, tiny_data: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(tiny_stream_bundle, b)
    before = sorted(p.name for p in b.rglob("*"))
    r = subprocess.run([sys.executable, "-m", "edgekd", "export", "tflite-stream", str(b), "--calib", str(tiny_data)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "no int8 streaming-state graph" in r.stderr
    assert sorted(p.name for p in b.rglob("*")) == before  # nothing written
