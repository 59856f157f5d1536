"""Export boundary: torch vs ONNX, manifest integrity, golden files."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export extra")
onnx = pytest.importorskip("onnx", reason="export extra")

from edgekd.core.errors import BundleError  # noqa: E402
from edgekd.runtime.detector import load_model  # noqa: E402
from edgekd.runtime.manifest import ModelManifest  # noqa: E402
from edgekd.train.checkpoint import Checkpoint  # noqa: E402

pytestmark = pytest.mark.slow


def test_torch_and_onnx_logits_agree(tiny_checkpoint: Path, tiny_bundle: Path) -> None:
    model = Checkpoint.load(tiny_checkpoint).build()
    x = np.random.default_rng(1).normal(-4.0, 3.0, size=(5, 98, 40)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = load_model(tiny_bundle).logits(x)
    assert got.shape == (5, 12)
    assert np.max(np.abs(got - want)) <= 1e-4


def test_manifest_hashes_and_onnx_metadata(tiny_bundle: Path) -> None:
    m = ModelManifest.load(tiny_bundle)
    assert set(m.files) >= {"model.onnx", "golden/input.npy", "golden/output.npy", "golden/clip.wav", "golden/detections.json"}
    m.verify_files(tiny_bundle)
    meta = {p.key: p.value for p in onnx.load(str(tiny_bundle / "model.onnx")).metadata_props}
    embedded = json.loads(meta["edgekd_manifest"])
    assert embedded["labels"] == list(m.labels) and embedded["frontend"] == m.frontend
    assert m.provenance["params"] > 0 and m.provenance["macs_per_inference"] > 0


def test_golden_output_reproduces(tiny_bundle: Path) -> None:
    m = ModelManifest.load(tiny_bundle)
    det = load_model(tiny_bundle)
    got = det.logits(np.load(tiny_bundle / m.golden["input"]))
    assert np.allclose(got, np.load(tiny_bundle / m.golden["output"]), atol=m.golden["atol"], rtol=m.golden["rtol"])


def test_tampered_file_is_refused_naming_it(tiny_bundle: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    data = bytearray((b / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (b / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.onnx: sha256"):
        load_model(b)


def test_export_refuses_garbage_checkpoint(tmp_path: Path) -> None:
    from edgekd.core.errors import ConfigError
    from edgekd.export.onnx import export_onnx

    (tmp_path / "x.pt").write_bytes(b"nope")
    with pytest.raises(ConfigError, match="not an edgekd checkpoint"):
        export_onnx(tmp_path / "x.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_export_check_refuses_a_graph_beyond_its_tolerance() -> None:
    from edgekd.core.errors import ConfigError
    from edgekd.export.verify import FP32_EXPORT_ATOL, KWS_INT8_EXPORT_STEPS, check_export, int8_atol

    want = np.zeros((2, 3), np.float32)
    assert check_export(want + 0.5 * FP32_EXPORT_ATOL, want, FP32_EXPORT_ATOL) == pytest.approx(0.5 * FP32_EXPORT_ATOL)
    with pytest.raises(ConfigError, match="export is broken"):
        check_export(want + 2 * FP32_EXPORT_ATOL, want, FP32_EXPORT_ATOL)
    step = 0.125
    assert check_export(want + KWS_INT8_EXPORT_STEPS * step, want, int8_atol(KWS_INT8_EXPORT_STEPS, step)) == KWS_INT8_EXPORT_STEPS * step
    with pytest.raises(ConfigError, match="tolerance"):
        check_export(want + (KWS_INT8_EXPORT_STEPS + 1) * step, want, int8_atol(KWS_INT8_EXPORT_STEPS, step))
    assert check_export(want + 100.0, want, None) == 100.0  # post-training quantization: measured, not matched


def test_an_export_prints_none_of_torchs_empty_warnings(tiny_kws_data, tiny_stream_checkpoint: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A recipe's log stays readable: the dynamo exporter's torchvision lines, torch's pytree deprecation and the
    tracer's pad_to warning (edgekd.export.quiet) are not printed by a float export nor by an int8 one."""
    import logging
    import warnings

    from edgekd.export.onnx import export_onnx
    from edgekd.export.quiet import _REGISTRATION_LOGGER
    from edgekd.train.pipeline import train_qat

    train_qat(tiny_kws_data, tiny_stream_checkpoint, tmp_path / "q.pt", epochs=1, threads=1, progress=False)
    log = logging.getLogger(_REGISTRATION_LOGGER)  # torch's own stderr handler sits above it (no propagation to root)
    log.addHandler(caplog.handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            export_onnx(tiny_stream_checkpoint, tmp_path / "fp32")
            export_onnx(tmp_path / "q.pt", tmp_path / "int8", int8=True)
    finally:
        log.removeHandler(caplog.handler)
    assert not [m for m in caplog.messages if "torchvision" in m], caplog.messages
    shown = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, (torch.jit.TracerWarning, FutureWarning))]
    assert not shown, shown
    assert (tmp_path / "fp32" / "model_stream.onnx").is_file() and (tmp_path / "int8" / "model_stream.onnx").is_file()
