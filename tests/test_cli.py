"""The CLI through typer's CliRunner: happy paths and every bad input named in the spine issue."""

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekd.cli import app
from edgekd.runtime.wav import read_wav, write_wav

runner = CliRunner()


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def _assert_one_line_error(res, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in err[0]


def _golden(shipped: Path) -> Path:
    return shipped / "golden" / "clip.wav"


def test_run_prints_json_lines(shipped_bundle: Path) -> None:
    res = _invoke("run", shipped_bundle, "--wav", _golden(shipped_bundle))
    assert res.exit_code == 0, res.output
    lines = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert len(lines) >= 3 and all(set(d) == {"t_ms", "label", "score", "latency_ms"} for d in lines)
    assert all(d["latency_ms"] >= 0 for d in lines)
    want = json.loads((shipped_bundle / "golden" / "detections.json").read_text())
    assert [d["label"] for d in lines] == [d["label"] for d in want]


def test_run_threshold_overrides_a_wake_words_own_threshold() -> None:
    """--threshold is for every keyword, also over a bundle's per-label thresholds (a wake word's): with a lower one
    the shipped alexa bundle reports more than its golden detections, some under its own threshold."""
    b = Path(__file__).resolve().parents[1] / "models" / "alexa-dscnn-stream-64-kd-int8"
    own_threshold = json.loads((b / "manifest.json").read_text())["postprocess"]["thresholds"]["alexa"]
    wav = _golden(b)
    own = [json.loads(ln) for ln in _invoke("run", b, "--wav", wav).stdout.splitlines()]
    res = _invoke("run", b, "--wav", wav, "--threshold", "0.05", "--refractory-ms", "100")
    assert res.exit_code == 0, res.output
    low = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert len(own) >= 3 and len(low) > len(own)
    assert all(d["score"] >= own_threshold for d in own)
    assert min(d["score"] for d in low) < own_threshold


@pytest.mark.parametrize("sr", [8000, 44100])
def test_run_resamples_other_rates_with_a_notice(shipped_bundle: Path, tmp_path: Path, sr: int) -> None:
    from edgekd.runtime.wav import resample

    a = read_wav(_golden(shipped_bundle))
    write_wav(tmp_path / "r.wav", resample(a.samples, 16000, sr), sr)
    res = _invoke("run", shipped_bundle, "--wav", tmp_path / "r.wav")
    assert res.exit_code == 0
    assert f"resampling {sr} Hz -> 16000 Hz" in res.stderr
    assert len(res.stdout.splitlines()) >= 2


def test_run_strict_refuses_other_rates(shipped_bundle: Path, tmp_path: Path) -> None:
    write_wav(tmp_path / "r.wav", np.zeros(8000, np.float32), 8000)
    _assert_one_line_error(_invoke("run", shipped_bundle, "--wav", tmp_path / "r.wav", "--strict"), "8000 Hz")


def test_run_downmixes_stereo(shipped_bundle: Path, tmp_path: Path) -> None:
    x = read_wav(_golden(shipped_bundle)).samples
    pcm = np.round(np.stack([x, x], axis=1).reshape(-1) * 32767).astype("<i2").tobytes()
    hdr = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 16000, 64000, 4, 16)
    (tmp_path / "st.wav").write_bytes(hdr + b"data" + struct.pack("<I", len(pcm)) + pcm)
    mono = _invoke("run", shipped_bundle, "--wav", _golden(shipped_bundle))
    stereo = _invoke("run", shipped_bundle, "--wav", tmp_path / "st.wav")
    assert stereo.exit_code == 0
    assert [json.loads(a)["label"] for a in stereo.stdout.splitlines()] == [json.loads(a)["label"] for a in mono.stdout.splitlines()]


def test_run_truncated_wav(shipped_bundle: Path, tmp_path: Path) -> None:
    data = _golden(shipped_bundle).read_bytes()
    (tmp_path / "t.wav").write_bytes(data[: len(data) // 3])
    _assert_one_line_error(_invoke("run", shipped_bundle, "--wav", tmp_path / "t.wav"), "t.wav", "truncated")


def test_run_empty_and_unreadable_files(shipped_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "e.wav").write_bytes(b"")
    _assert_one_line_error(_invoke("run", shipped_bundle, "--wav", tmp_path / "e.wav"), "empty")
    _assert_one_line_error(_invoke("run", shipped_bundle, "--wav", tmp_path / "missing.wav"), "cannot read")


def test_run_tampered_bundle(shipped_bundle: Path, tmp_path: Path) -> None:
    b = tmp_path / "bundle"
    shutil.copytree(shipped_bundle, b)
    p = b / "golden" / "output.npy"
    p.write_bytes(p.read_bytes()[:-4] + b"\0\0\0\0")
    _assert_one_line_error(_invoke("run", b, "--wav", _golden(shipped_bundle)), "output.npy", "sha256")


def test_run_not_a_bundle(tmp_path: Path) -> None:
    _assert_one_line_error(_invoke("run", tmp_path, "--wav", tmp_path / "x.wav"), "manifest.json")


def test_eval_writes_full_json(shipped_bundle: Path, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "res.json"
    res = _invoke("eval", shipped_bundle, "--data", tiny_data, "--split", "all", "--json", out)
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["n"] == 10 * 8 + 16 + 8
    assert 0.0 <= r["accuracy"] <= 1.0 and set(r["per_label"]) == set(r["labels"])
    conf = np.array(r["confusion"])
    assert conf.shape == (12, 12) and conf.sum() == r["n"]
    assert abs(np.trace(conf) / conf.sum() - r["accuracy"]) < 1e-9


def test_eval_missing_label_folder_writes_nothing(shipped_bundle: Path, tiny_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    shutil.copytree(tiny_data, data)
    shutil.rmtree(data / "stop")
    out = tmp_path / "res.json"
    _assert_one_line_error(_invoke("eval", shipped_bundle, "--data", data, "--json", out), "stop")
    assert not out.exists()


def test_student_needs_exactly_one_teacher_choice(tiny_data: Path, tmp_path: Path) -> None:
    _assert_one_line_error(_invoke("train", "student", "--data", tiny_data, "--out", tmp_path / "s.pt"), "--no-teacher")


def test_student_augmentations_weight_average_and_balance_reach_the_checkpoint(tiny_data: Path, tmp_path: Path) -> None:
    """The options reach the checkpoint's config; QAT of a label-balanced checkpoint keeps the balanced loss (here with
    ``--epochs 0``, ranges calibrated without fine-tuning)."""
    from edgekd.train.checkpoint import Checkpoint

    out = tmp_path / "s.pt"
    res = _invoke("train", "student", "--data", tiny_data, "--out", out, "--no-teacher", "--epochs", "1", "--views", "1", "--threads", "1",
                  "--batch-size", "32", "--cache-dir", tmp_path / "cache", "--freq-warp", "0.1", "--eq-db", "3", "--ema", "0.9",
                  "--balance-labels")
    assert res.exit_code == 0, res.output
    cfg = Checkpoint.load(out).config
    assert (cfg["freq_warp"], cfg["eq_db"], cfg["ema"], cfg["balance_labels"]) == (0.1, 3.0, 0.9, True)
    res = _invoke("train", "qat", out, "--data", tiny_data, "--out", tmp_path / "q.pt", "--epochs", "0", "--views", "1", "--threads", "1",
                  "--cache-dir", tmp_path / "cache")  # 0 epochs: int8 ranges calibrated, no fine-tuning
    assert res.exit_code == 0, res.output
    q = Checkpoint.load(tmp_path / "q.pt").config
    assert q["balance_labels"] is True and q["epochs"] == 0 and q["qat"] is True


def test_export_bad_checkpoint_leaves_no_bundle(tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    _assert_one_line_error(_invoke("export", "onnx", tmp_path / "bad.pt", "--out", tmp_path / "b"), "checkpoint")
    assert not (tmp_path / "b").exists()


def test_real_process_exit_code_and_stderr(shipped_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "e.wav").write_bytes(b"")
    p = subprocess.run([sys.executable, "-m", "edgekd", "run", str(shipped_bundle), "--wav", str(tmp_path / "e.wav")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("error: ")


def test_help_explains_commands() -> None:
    res = _invoke("--help")
    assert res.exit_code == 0
    for cmd in ("data", "train", "export", "run", "eval", "demo"):
        assert cmd in res.stdout


@pytest.mark.parametrize("where", ["dir", "under_file", "readonly"])
def test_unwritable_json_is_refused_before_the_work(shipped_bundle: Path, tmp_path: Path, where: str) -> None:
    if where == "dir":
        target = tmp_path
    elif where == "under_file":
        (tmp_path / "f").write_text("x")
        target = tmp_path / "f" / "r.json"
    else:
        target = Path("/proc/edgekd-result.json")  # a file system nobody can write to, root included
    res = _invoke("bench", shipped_bundle, "--wav", _golden(shipped_bundle), "--json", target, "--repeats", "1")
    _assert_one_line_error(res, "--json")
    assert "CPU ms" not in res.stderr  # refused before measuring
