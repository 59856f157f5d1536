"""Post-processing chosen from data: the sweep replays exactly what a Stream does, and --write stores it."""

import json
import shutil
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import edgekd
from edgekd.cli import app
from edgekd.eval.matching import replay
from edgekd.eval.tune import stream_posteriors
from edgekd.runtime.manifest import ModelManifest
from edgekd.runtime.wav import load_audio


def test_offline_replay_equals_the_stream(shipped_bundle: Path) -> None:
    """The sweep's shortcut (posteriors once, then replay) must give the runtime's own detections."""
    det = edgekd.load_model(shipped_bundle)
    pp = det.postprocess
    x = load_audio(shipped_bundle / "golden" / "clip.wav", 16000)
    probs, t_ms = stream_posteriors(det, x, pp.stride_ms)
    fired = replay(probs, t_ms, max(1, round(pp.smooth_ms / pp.stride_ms)), pp.threshold, pp.refractory_ms)
    want = [(d.label, d.t_ms) for d in det.create_stream().accept_waveform(x)]
    assert [(det.manifest.keyword_labels[k], t) for k, t in fired] == want and len(want) >= 3


def test_tune_writes_settings_and_regenerates_golden(shipped_bundle: Path, tiny_data: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(shipped_bundle, b)
    out = tmp_path / "sweep.json"
    res = CliRunner().invoke(app, ["tune", str(b), "--data", str(tiny_data), "--split", "all", "--write", "--json", str(out), "--force"])
    assert res.exit_code == 0, res.output  # --force: the tiny set has 8 clips per keyword, below the minimum
    sweep = json.loads(out.read_text())
    assert sweep["keyword_clips"] == 80 and len(sweep["sweep"]) > 20
    best = max(r["score"] for r in sweep["sweep"])
    chosen = next(r for r in sweep["sweep"] if all(r[k] == sweep["chosen"][k] for k in ("stride_ms", "smooth_ms", "threshold")))
    assert chosen["score"] >= best - 0.005
    m = ModelManifest.load(b)
    assert {k: m.postprocess[k] for k in sweep["chosen"]} == sweep["chosen"]
    from edgekd.runtime.selftest import selftest

    assert all(c.ok for c in selftest(b, backend="onnx"))  # golden detections follow the new settings
    assert np.isfinite(sweep["recall"])


def test_tune_refuses_the_test_split(shipped_bundle: Path, tiny_data: Path) -> None:
    res = CliRunner().invoke(app, ["tune", str(shipped_bundle), "--data", str(tiny_data), "--split", "test"])
    assert res.exit_code == 2 and "validation" in res.stderr


def test_tune_write_refuses_too_little_data(shipped_bundle: Path, tiny_data: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(shipped_bundle, b)
    before = (b / "manifest.json").read_bytes()
    res = CliRunner().invoke(app, ["tune", str(b), "--data", str(tiny_data), "--split", "all", "--write"])
    assert res.exit_code == 2 and "at least 10 per keyword" in res.stderr and "--force" in res.stderr, res.output
    assert (b / "manifest.json").read_bytes() == before


def test_tune_at_a_fixed_stride(shipped_bundle: Path, tiny_data: Path, tmp_path: Path) -> None:
    """--stride-ms sweeps that stride only (smoothing and threshold still chosen); a stride off the frame hop is refused."""
    out = tmp_path / "sweep.json"
    res = CliRunner().invoke(app, ["tune", str(shipped_bundle), "--data", str(tiny_data), "--split", "all", "--stride-ms", "160", "--json", str(out)])
    assert res.exit_code == 0, res.output
    sweep = json.loads(out.read_text())
    assert {r["stride_ms"] for r in sweep["sweep"]} == {160} and sweep["chosen"]["stride_ms"] == 160
    assert {r["smooth_ms"] for r in sweep["sweep"]} == {200, 320, 160}
    res = CliRunner().invoke(app, ["tune", str(shipped_bundle), "--data", str(tiny_data), "--split", "all", "--stride-ms", "155"])
    assert res.exit_code != 0 and "multiple of the 10 ms frame hop" in res.output
