"""The openWakeWord teacher adapter reproduces openwakeword.Model.predict exactly (optional extra `oww`)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("openwakeword") is None,
                                reason="the optional extra `oww` (openwakeword==0.4.0) is not installed; make test installs it")


@pytest.fixture(scope="module")
def hey_jarvis_pcm() -> np.ndarray:
    """A synthesized 'hey jarvis' between stretches of noise and another phrase, int16 at 16 kHz."""
    from edgekd.data.voices.espeak import Espeak
    from edgekd.runtime.wav import resample

    es = Espeak()
    parts = []
    rng = np.random.default_rng(1)
    for text, voice in (("hey jarvis", "en-us"), ("hello there marvin", "en"), ("hey jarvis", "en-gb-x-rp")):
        speech = es.synth(text, voice).astype(np.float32) / 32768.0
        parts += [rng.standard_normal(8000).astype(np.float32) * 0.01, resample(speech, es.sample_rate, 16000)]
    parts.append(np.zeros(16000, np.float32))
    x = np.concatenate(parts)
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def test_adapter_equals_model_predict(hey_jarvis_pcm: np.ndarray) -> None:
    from openwakeword.model import Model

    from edgekd.train.teachers.oww import CHUNK, OwwAdapter, oww_models_dir

    pcm = hey_jarvis_pcm
    model = Model(wakeword_model_paths=[str(oww_models_dir() / "hey_jarvis_v0.1.onnx")])
    ref = np.array([model.predict(pcm[i * CHUNK : (i + 1) * CHUNK])["hey_jarvis_v0.1"] for i in range(pcm.shape[0] // CHUNK)], dtype=np.float32)
    got = OwwAdapter("hey_jarvis").score_pcm(pcm)
    assert got.shape == ref.shape and got.shape[0] > 20
    np.testing.assert_array_equal(got, ref)
    assert ref.max() > 0.5  # the synthesized phrase really wakes the teacher, so equality is not all zeros
    assert np.all(got[:5] == 0.0)


def test_teacher_score_cli_and_bad_heads(hey_jarvis_pcm: np.ndarray, tmp_path: Path) -> None:
    from edgekd.runtime.wav import write_wav

    wav = tmp_path / "hj.wav"
    write_wav(wav, hey_jarvis_pcm.astype(np.float32) / 32768.0, 16000)
    p = subprocess.run([sys.executable, "-m", "edgekd", "teacher", "score", str(wav)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    rows = [ln.split() for ln in p.stdout.splitlines()]
    assert [int(r[0]) for r in rows[:3]] == [80, 160, 240] and max(float(r[1]) for r in rows) > 0.5
    p = subprocess.run([sys.executable, "-m", "edgekd", "teacher", "score", str(wav), "--teacher", "oww:nope"], capture_output=True, text=True)
    assert p.returncode == 2 and "no openWakeWord head 'nope'" in p.stderr and "hey_jarvis" in p.stderr
    p = subprocess.run([sys.executable, "-m", "edgekd", "teacher", "score", str(wav), "--teacher", "hey_jarvis"], capture_output=True, text=True)
    assert p.returncode == 2 and "give oww:NAME" in p.stderr


def test_an_onnx_head_that_does_not_fit_the_adapter_is_refused(tmp_path: Path) -> None:
    """A head whose input is not [batch, 16, 96] (here: openWakeWord's own embedding model posing as a head)."""
    import shutil

    from edgekd.core.errors import ConfigError
    from edgekd.train.teachers.oww import OwwAdapter, oww_models_dir

    d = tmp_path / "models"
    shutil.copytree(oww_models_dir(), d)
    shutil.copy(d / "embedding_model.onnx", d / "fake_v0.1.onnx")
    with pytest.raises(ConfigError, match="do not match the openWakeWord adapter"):
        OwwAdapter("fake", models_dir=d)


def test_train_wakeword_command_distils_the_teacher_into_bundles(tmp_path: Path) -> None:
    """`edgekd train wakeword` on tiny material: the teacher labels the clips and the transfer speech, a distilled
    student and its QAT int8 version come out as bundles that stream; the licence travels in the provenance; a
    rerun reuses every model; a folder without clips/ is one line."""
    import json

    from edgekd import load_model
    from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
    from edgekd.runtime.wav import load_audio

    ww = tmp_path / "ww"
    p = subprocess.run([sys.executable, "-m", "edgekd", "data", "synth-wakeword", str(ww), "--per-word", "12", "--transfer-minutes", "0.2",
                        "--positives", "2", "--negative-minutes", "0.05", "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgekd", "train", "wakeword", str(ww), "--out", str(out), "--teacher", "oww:hey_jarvis", "--epochs", "1",
           "--qat-epochs", "1", "--threads", "1", "--stride-ms", "160"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["label"] == "hey_jarvis" and set(report["bundles"]) == {"distilled", "distilled QAT int8"}
    t = report["teacher_on_training"]
    frames = LogMelFrontend(FrontendParams()).features(load_audio(ww / "transfer.wav", 16000)).shape[0]
    assert t["transfer_windows"] == (frames - 98) // 25 + 1 > 40  # 0.2 min of transfer speech: 1 s windows every 250 ms
    assert t["positive_clips_mean_score"] > t["negative_clips_mean_score"]  # the teacher hears its phrase in the clips
    for name in ("bundle-distilled", "bundle-distilled-int8"):
        det = load_model(out / name)
        assert tuple(det.labels) == ("hey_jarvis", "_unknown_", "_silence_") and det.stride_ms == 160
        assert "CC BY-NC-SA" in det.manifest.provenance["licence"] and len(det.manifest.provenance["teacher_sha256"]) == 64
        s = det.create_stream()
        s.accept_waveform(np.zeros(16000 * 2, np.float32))
    models = {f: f.stat().st_mtime_ns for f in out.glob("*.pt")}
    assert len(models) == 2
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and {f: f.stat().st_mtime_ns for f in out.glob("*.pt")} == models
    p = subprocess.run([sys.executable, "-m", "edgekd", "train", "wakeword", str(tmp_path), "--out", str(out), "--teacher", "oww:hey_jarvis"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "clips: missing" in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run([sys.executable, "-m", "edgekd", "train", "wakeword", str(ww), "--out", str(tmp_path / "x"), "--teacher", "oww:nope"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
