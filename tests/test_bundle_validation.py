"""Bundles that lie are refused at load time with one line, by `run` and `selftest` alike."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekd.cli import app
from edgekd.core.errors import BundleError, ConfigError
from edgekd.runtime.detector import load_model
from edgekd.runtime.manifest import ModelManifest, sha256_file

runner = CliRunner()
STREAM = Path(__file__).resolve().parents[1] / "models" / "kws12-dscnn-stream-kd"


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(src, dst)
    return dst


def _edit(bundle: Path, change) -> None:  # type: ignore[no-untyped-def]
    p = bundle / "manifest.json"
    d = json.loads(p.read_text())
    change(d)
    p.write_text(json.dumps(d))


def _one_line(args: list[str]) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in res.output, res.output
    return err[0]


LIES = {
    "five labels": lambda d: d.update(labels=d["labels"][:5]),
    "fourteen labels": lambda d: d.update(labels=d["labels"] + ["a", "b"]),
    "labels as a string": lambda d: d.update(labels="yes,no"),
    "repeated label": lambda d: d.update(labels=d["labels"][:-1] + ["yes"]),
    "fmin above fmax": lambda d: d["frontend"].update(fmin_hz=8000.0, fmax_hz=100.0),
    "nan log floor": lambda d: d["frontend"].update(log_floor=float("nan")),
    "negative log floor": lambda d: d["frontend"].update(log_floor=-1.0),
    "sample rate contradicts frontend": lambda d: d.update(sample_rate=8000),
    "hop 0": lambda d: d["frontend"].update(hop_samples=0),
    "negative hop": lambda d: d["frontend"].update(hop_samples=-160),
    "unknown window": lambda d: d["frontend"].update(window="hamming"),
    "unknown mel scale": lambda d: d["frontend"].update(mel_scale="htk"),
    "threshold high": lambda d: d["postprocess"].update(threshold="high"),
    "integer sha": lambda d: d["files"].update({"model.onnx": 12345}),
    "manifest null": lambda d: d.clear(),  # then written as null below
    # found by bench/fuzz.py: each was a TypeError in selftest
    "golden atol null": lambda d: d["golden"].update(atol=None),
    "golden output a number": lambda d: d["golden"].update(output=1),
    "golden detections a number": lambda d: d["golden"].update(detections=1),
    "frontend without sample rate": lambda d: d["frontend"].pop("sample_rate"),  # a KeyError for streaming bundles
}


@pytest.mark.parametrize("case", sorted(LIES))
def test_lying_manifest_is_one_line_for_run_and_selftest(shipped_bundle: Path, tmp_path: Path, case: str) -> None:
    b = _copy(shipped_bundle, tmp_path)
    _edit(b, LIES[case])
    if case == "manifest null":
        (b / "manifest.json").write_text("null")
    wav = b / "golden" / "clip.wav"
    _one_line(["run", str(b), "--wav", str(wav)])
    res = runner.invoke(app, ["selftest", str(b)])
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output


def test_manifest_as_a_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not an object"):
        ModelManifest.from_dict([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("drop", ["model_stream.onnx", "state_init.npz"])
def test_streaming_files_must_be_listed(tmp_path: Path, drop: str) -> None:
    b = _copy(STREAM, tmp_path)
    _edit(b, lambda d: d["files"].pop(drop))
    with pytest.raises(BundleError, match=f"no sha256 for {drop}"):
        load_model(b)
    res = runner.invoke(app, ["selftest", str(b)])
    assert res.exit_code != 0 and drop in res.output


def test_altered_unlisted_file_no_longer_passes_silently(tmp_path: Path) -> None:
    b = _copy(STREAM, tmp_path)
    with np.load(b / "state_init.npz") as z:
        states = {k: z[k] + 1.0 for k in z.files}
    np.savez(b / "state_init.npz", **states)
    with pytest.raises(BundleError, match="state_init.npz"):
        load_model(b)


def test_empty_files_block_fails_selftest_as_run(shipped_bundle: Path, tmp_path: Path) -> None:
    b = _copy(shipped_bundle, tmp_path)
    _edit(b, lambda d: d.update(files={}))
    _one_line(["run", str(b), "--wav", str(b / "golden" / "clip.wav")])
    res = runner.invoke(app, ["selftest", str(b)])
    assert res.exit_code != 0 and "no sha256" in res.output


@pytest.mark.parametrize("path", ["../outside.onnx", "/etc/hostname"])
def test_paths_outside_the_bundle_are_refused(shipped_bundle: Path, tmp_path: Path, path: str) -> None:
    b = _copy(shipped_bundle, tmp_path)
    _edit(b, lambda d: d["files"].update({path: "0" * 64}))
    with pytest.raises(BundleError, match="not a relative path inside the bundle"):
        load_model(b)


def test_symlink_leading_out_is_refused(shipped_bundle: Path, tmp_path: Path) -> None:
    b = _copy(shipped_bundle, tmp_path)
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(b / "model.onnx", outside)
    os.symlink(outside, b / "model.onnx")
    assert sha256_file(b / "model.onnx")  # the bytes are the right ones; where they live is not
    with pytest.raises(BundleError, match="outside the bundle"):
        load_model(b)
    res = runner.invoke(app, ["selftest", str(b)])
    assert res.exit_code != 0 and "outside the bundle" in res.output


def test_postprocess_types_are_checked() -> None:
    from edgekd.runtime.kws_post import KwsPostprocessConfig

    with pytest.raises(ConfigError, match="threshold"):
        KwsPostprocessConfig.from_dict({"threshold": "high"})
    with pytest.raises(ConfigError, match="stride_ms"):
        KwsPostprocessConfig.from_dict({"stride_ms": 8.5})


@pytest.mark.parametrize("name", ["golden/output.npy", "golden/detections.json"])
def test_unusable_golden_file_with_a_valid_sha_fails_selftest_in_one_line(shipped_bundle: Path, tmp_path: Path, name: str) -> None:
    b = _copy(shipped_bundle, tmp_path)
    (b / name).write_bytes(b"not what it claims to be")
    _edit(b, lambda d: d["files"].update({name: sha256_file(b / name)}))  # re-hashed: only its content is wrong
    res = runner.invoke(app, ["selftest", str(b)])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "golden" in err[0], res.output


def test_streaming_block_is_checked(tmp_path: Path) -> None:
    # found by bench/fuzz.py: streaming.states[4] = null was a TypeError at load time
    b = _copy(STREAM, tmp_path)
    _edit(b, lambda d: d["streaming"]["states"].__setitem__(0, None))
    assert "streaming.states" in _one_line(["run", str(b), "--wav", str(b / "golden" / "clip.wav")])
    _edit(b, lambda d: d["streaming"].update(states=[{"input": "state_0", "output": "state_out_0", "shape": [1, 9, 40]}], hop_frames=0))
    assert "hop_frames" in _one_line(["run", str(b), "--wav", str(b / "golden" / "clip.wav")])


def test_the_manifest_asks_the_frontend_for_every_parameter() -> None:
    from edgekd.runtime.frontend import FrontendParams
    from edgekd.runtime.manifest import _FRONTEND_KEYS

    assert set(_FRONTEND_KEYS) == set(FrontendParams.__dataclass_fields__)
