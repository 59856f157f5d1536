"""Streaming runtime: chunk-size invariance, golden detections, clip prediction."""

import json
from pathlib import Path

import numpy as np
import pytest

import edgekd
from edgekd.core.errors import AudioFormatError
from edgekd.runtime.wav import load_audio


def _stream(det: edgekd.Detector, x: np.ndarray, chunk: int) -> list[edgekd.Detection]:
    s = det.create_stream()
    out: list[edgekd.Detection] = []
    for i in range(0, x.shape[0], chunk):
        out += s.accept_waveform(x[i : i + chunk])
    return out


def test_detections_do_not_depend_on_chunk_size(shipped_bundle: Path) -> None:
    det = edgekd.load_model(shipped_bundle)
    x = load_audio(shipped_bundle / "golden" / "clip.wav", 16000)
    runs = {c: _stream(det, x, c) for c in (160, 1280, 16000)}
    assert len(runs[160]) >= 3
    assert runs[160] == runs[1280] == runs[16000]


def test_the_default_int8_streaming_bundle_is_chunk_size_invariant() -> None:
    # the README's first model: int8 streaming-state graph, uint8 channels-last states, frames computed once per hop
    bundle = Path(__file__).resolve().parents[1] / "models" / "kws12-dscnn-stream64-kd-int8"
    det = edgekd.load_model(bundle)
    assert det.mode == "stream" and det.manifest.quantization == "int8-qat"
    x = load_audio(bundle / "golden" / "clip.wav", 16000)
    logits: dict[int, list[np.ndarray]] = {}
    runs = {}
    for c in (160, 1280, 16000):
        s = det.create_stream()
        logits[c] = []
        s.on_inference = lambda t_ms, out, c=c: logits[c].append(out.copy())
        runs[c] = [d for i in range(0, x.shape[0], c) for d in s.accept_waveform(x[i : i + c])]
    assert len(runs[160]) >= 3 and runs[160] == runs[1280] == runs[16000]
    assert len(logits[160]) > 10 and np.array_equal(logits[160], logits[1280]) and np.array_equal(logits[160], logits[16000])


def test_golden_stream_detections_reproduce(shipped_bundle: Path) -> None:
    det = edgekd.load_model(shipped_bundle)
    x = load_audio(shipped_bundle / "golden" / "clip.wav", 16000)
    want = json.loads((shipped_bundle / "golden" / "detections.json").read_text())
    got = [d.to_dict() for d in _stream(det, x, 1280)]
    assert [(d["label"], d["t_ms"]) for d in got] == [(d["label"], d["t_ms"]) for d in want]
    assert np.allclose([d["score"] for d in got], [d["score"] for d in want], atol=1e-3)


def test_reset_makes_a_stream_start_over(shipped_bundle: Path) -> None:
    det = edgekd.load_model(shipped_bundle)
    x = load_audio(shipped_bundle / "golden" / "clip.wav", 16000)
    s = det.create_stream()
    first = s.accept_waveform(x)
    s.reset()
    assert s.accept_waveform(x) == first


def test_predict_clip_is_a_distribution(shipped_bundle: Path) -> None:
    det = edgekd.load_model(shipped_bundle)
    p = det.predict_clip(np.zeros(8000, np.float32))
    assert p.shape == (len(det.labels),) and abs(float(p.sum()) - 1.0) < 1e-5
    assert det.labels[int(np.argmax(p))] == "_silence_"


def test_bad_audio_is_refused(shipped_bundle: Path) -> None:
    det = edgekd.load_model(shipped_bundle)
    with pytest.raises(AudioFormatError):
        det.predict_clip(np.zeros(0, np.float32))
    with pytest.raises(AudioFormatError, match="NaN"):
        det.create_stream().accept_waveform(np.array([0.0, np.nan], np.float32))
