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
    from edgekd.data.espeak import Espeak
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

    from edgekd.train.onnx_teacher import CHUNK, OwwAdapter, oww_models_dir

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

    from edgekd.errors import ConfigError
    from edgekd.train.onnx_teacher import OwwAdapter, oww_models_dir

    d = tmp_path / "models"
    shutil.copytree(oww_models_dir(), d)
    shutil.copy(d / "embedding_model.onnx", d / "fake_v0.1.onnx")
    with pytest.raises(ConfigError, match="do not match the openWakeWord adapter"):
        OwwAdapter("fake", models_dir=d)
