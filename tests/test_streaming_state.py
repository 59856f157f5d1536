"""Streaming-state models: one hop of new frames + explicit state gives the whole-window model's answer."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="training extra")

import edgekd  # noqa: E402
from edgekd.errors import ConfigError  # noqa: E402
from edgekd.manifest import ModelManifest  # noqa: E402
from edgekd.runtime.wav import load_audio  # noqa: E402

pytestmark = pytest.mark.slow


def _run(det: edgekd.Detector, x: np.ndarray, chunk: int = 1280) -> tuple[list, np.ndarray]:
    s = det.create_stream()
    s.logits_log = []
    dets = [d for i in range(0, x.shape[0], chunk) for d in s.accept_waveform(x[i : i + chunk])]
    return dets, np.array(s.logits_log)


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
    assert 0 < st["graph_macs_per_hop"] < m.provenance["graph_macs_per_inference"] / 4  # a hop is much cheaper than a window
    from edgekd.runtime.selftest import selftest

    assert all(c.ok for c in selftest(tiny_stream_bundle))


def test_stride_must_match_the_hop(tiny_stream_bundle: Path) -> None:
    with pytest.raises(ConfigError, match="80 ms"):
        edgekd.load_model(tiny_stream_bundle, postprocess={"stride_ms": 40})
    edgekd.load_model(tiny_stream_bundle, postprocess={"stride_ms": 40}, mode="whole")  # fine without the state model


def test_stream_mode_needs_a_streaming_bundle(shipped_bundle: Path) -> None:
    with pytest.raises(ConfigError, match="--mode whole"):
        edgekd.load_model(shipped_bundle, mode="stream")
