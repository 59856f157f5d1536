"""TFLite export and the LiteRT backend: parity with torch and ONNX, same detections, clear errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.core.errors import BackendError
from edgekd.runtime.detector import load_model
from edgekd.runtime.wav import load_audio

REPO = Path(__file__).resolve().parents[1]
INT8 = REPO / "models" / "kws12-dscnn-kd-int8"

litert = pytest.importorskip("ai_edge_litert", reason='LiteRT runtime: the "litert" extra (make test installs it)')


def _stream(det, x: np.ndarray) -> list:  # type: ignore[no-untyped-def]
    s = det.create_stream()
    return [d for i in range(0, x.shape[0], 1280) for d in s.accept_waveform(x[i : i + 1280])]


@pytest.mark.slow
def test_tflite_fp32_matches_torch(tiny_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason='TFLite converter: the "tflite" extra (make test installs it)')
    import torch

    from edgekd.export.tflite import convert_to_tflite
    from edgekd.runtime.backends.litert import LiteRTBackend
    from edgekd.train.checkpoint import Checkpoint

    model = Checkpoint.load(tiny_checkpoint).build()
    convert_to_tflite(model, 98, 40, tmp_path / "m.tflite")
    x = np.random.default_rng(0).normal(-4.0, 3.0, size=(6, 98, 40)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = LiteRTBackend(tmp_path / "m.tflite").run({"features": x})["logits"]
    assert np.max(np.abs(got - want)) <= 1e-4 * max(1.0, float(np.max(np.abs(want))))


@pytest.mark.slow
def test_export_tflite_adds_to_bundle_and_selfchecks(tiny_checkpoint: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason='TFLite converter: the "tflite" extra (make test installs it)')
    import shutil

    from edgekd.export.tflite import add_tflite_to_bundle
    from edgekd.runtime.manifest import ModelManifest

    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    m = add_tflite_to_bundle(tiny_checkpoint, b)
    assert m.tflite_file == "model.tflite" and "model.tflite" in ModelManifest.load(b).files
    det = load_model(b, backend="litert")
    got = det.logits(np.load(b / m.golden["input"]))
    assert np.allclose(got, np.load(b / m.golden["output"]), atol=1e-4)


def test_same_detections_with_either_backend(shipped_bundle: Path) -> None:
    x = load_audio(shipped_bundle / "golden" / "clip.wav", 16000)
    onnx_dets = _stream(load_model(shipped_bundle, backend="onnx"), x)
    lite_dets = _stream(load_model(shipped_bundle, backend="litert"), x)
    assert len(onnx_dets) >= 3
    assert [(d.label, d.t_ms) for d in onnx_dets] == [(d.label, d.t_ms) for d in lite_dets]
    assert np.allclose([d.score for d in onnx_dets], [d.score for d in lite_dets], atol=1e-4)


def test_litert_int8_agrees_with_onnx_int8(tiny_data: Path) -> None:
    from edgekd.data.speech_commands import SpeechCommands

    onnx_det = load_model(INT8, backend="onnx")
    lite_det = load_model(INT8, backend="litert")
    clips = SpeechCommands(tiny_data).clips(onnx_det.labels, "all")
    feats = np.stack([onnx_det.clip_features(c.load(16000)) for c in clips])
    lo = onnx_det.logits(feats)
    b = lite_det.logits(feats).argmax(1)
    assert feats.shape[0] >= 100
    # int8 logits tie exactly on a few clips (their top two dequantize to one value), and argmax then picks the first
    # label; LiteRT's choice agrees when it is one of ONNX Runtime's tied best
    assert np.mean(lo[np.arange(b.shape[0]), b] == lo.max(1)) >= 0.98


def test_unknown_backend_is_refused(shipped_bundle: Path) -> None:
    with pytest.raises(BackendError, match="unknown backend"):
        load_model(shipped_bundle, backend="tensorrt")


def _cli_without(modules: list[str], *args: str) -> subprocess.CompletedProcess:
    blocked = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    code = "import sys\n" + blocked + "from edgekd.cli import main\nsys.argv = ['edgekd', *sys.argv[1:]]\nmain()\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_litert_backend_without_litert_says_what_to_install(shipped_bundle: Path) -> None:
    wav = str(shipped_bundle / "golden" / "clip.wav")
    p = _cli_without(["ai_edge_litert", "tflite_runtime"], "run", str(shipped_bundle), "--wav", wav, "--backend", "litert")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and 'pip install "edgekd[litert]"' in p.stderr


def test_tflite_export_without_converter_says_what_to_install(tiny_checkpoint: Path, shipped_bundle: Path, tmp_path: Path) -> None:
    import shutil

    b = tmp_path / "b"
    shutil.copytree(shipped_bundle, b)
    p = _cli_without(["tensorflow"], "export", "tflite", str(tiny_checkpoint), "--bundle", str(b))
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "edgekd[tflite]" in p.stderr
