"""Careless hands at the real entry point (`python -m edgekd`): one line per usage error, help that reads right,
checks before any connection or work, nothing written that was not asked for, and result files with provenance."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgekd.core.progress import Progress
from edgekd.runtime.manifest import sha256_file
from edgekd.train.catalog import arch_names

REPO = Path(__file__).resolve().parents[1]
INT8 = REPO / "models" / "kws12-dscnn-kd-int8"
CLIP = INT8 / "golden" / "clip.wav"


def edgekd(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgekd", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def one_error_line(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert "Traceback" not in p.stderr and "╭" not in p.stderr  # no framed box either
    return lines[0]


USAGE = {
    "epochs 0": (["train", "student", "--epochs", "0"], "--epochs"),
    "batch size 0": (["train", "student", "--batch-size", "0"], "--batch-size"),
    "negative lr": (["train", "teacher", "--data", "d", "--out", "o", "--lr", "-1"], "--lr"),
    "nan lr": (["train", "teacher", "--data", "d", "--out", "o", "--lr", "nan"], "--lr"),
    "alpha above 1": (["train", "student", "--alpha", "1.5"], "--alpha"),
    "subset 0": (["train", "student", "--subset", "0"], "--subset"),
    "weight average 1": (["train", "student", "--ema", "1"], "--ema"),
    "warp 0.5": (["train", "student", "--freq-warp", "0.5"], "--freq-warp"),
    "eq negative": (["train", "student", "--eq-db", "-1"], "--eq-db"),
    "duration nan": (["run", str(INT8), "--wav", str(CLIP), "--duration", "nan"], "--duration"),
    "duration inf": (["run", str(INT8), "--wav", str(CLIP), "--duration", "inf"], "--duration"),
    "duration 0": (["run", str(INT8), "--wav", str(CLIP), "--duration", "0"], "--duration"),
    "threads 0": (["run", str(INT8), "--wav", str(CLIP), "--threads", "0"], "--threads"),
    "threads 65": (["bench", str(INT8), "--wav", str(CLIP), "--threads", "65"], "--threads"),
    "threshold 2": (["run", str(INT8), "--wav", str(CLIP), "--threshold", "2"], "--threshold"),
    "fa per hour 0": (["eval-stream", str(INT8), "--target-fa-per-hour", "0"], "--target-fa-per-hour"),
    "port 0": (["board", "info", "u@127.0.0.1", "--port", "0"], "--port"),
    "unknown option": (["run", str(INT8), "--nope"], "--nope"),
    "unknown command": (["bogus"], "bogus"),
    "missing argument": (["run"], "BUNDLE"),
}


@pytest.mark.parametrize("case", sorted(USAGE))
def test_usage_errors_are_one_line(case: str) -> None:
    args, fragment = USAGE[case]
    assert fragment in one_error_line(edgekd(*args))


def test_missing_teacher_file_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(edgekd("train", "student", "--data", tmp_path, "--out", tmp_path / "s.pt", "--teacher", tmp_path / "none.pt"))
    assert "none.pt" in line
    real = tmp_path / "real.pt"
    real.write_bytes(b"x")
    line = one_error_line(edgekd("train", "student", "--data", tmp_path, "--out", tmp_path / "s.pt", "--teacher", real,
                                 "--teacher", tmp_path / "second.pt"))  # the second member of an ensemble is checked too
    assert "second.pt" in line and "no such file" in line


def test_help_reads_right() -> None:
    run = edgekd("run", "--help")
    assert run.returncode == 0
    assert "edgekd run [OPTIONS] BUNDLE" in run.stdout and "{bundle}" not in run.stdout and "<bool>" not in run.stdout
    assert "list[Path]" not in edgekd("train", "qat", "--help").stdout
    tflite = edgekd("export", "tflite", "--help")
    assert '"edgekd[tflite]"' in " ".join(tflite.stdout.split())
    student = " ".join(edgekd("train", "student", "--help").stdout.replace("│", " ").split())
    for name in arch_names("student"):  # every student architecture of the registry, not a hand-kept list
        assert name in student


def test_c_array_errors_are_not_blamed_on_the_symbol(tmp_path: Path) -> None:
    import shutil

    b = tmp_path / "no-tflite"
    shutil.copytree(INT8, b)
    manifest = json.loads((b / "manifest.json").read_text())
    del manifest["tflite_file"]
    (b / "manifest.json").write_text(json.dumps(manifest))
    line = one_error_line(edgekd("export", "c-array", b, "--out", tmp_path / "fw"))
    assert "--symbol" not in line and ".tflite" in line
    assert "not a C identifier" in one_error_line(edgekd("export", "c-array", INT8, "--out", tmp_path / "fw", "--symbol", "1bad"))


@pytest.mark.parametrize("flag", ["--identity", "--wheelhouse"])
def test_deploy_paths_are_checked_before_connecting(flag: str, tmp_path: Path) -> None:
    # port 9 (discard) has no SSH server: had the command connected, the error would be about the connection
    line = one_error_line(edgekd("deploy", INT8, "nobody@127.0.0.1", "--port", "9", flag, tmp_path / "missing"))
    assert flag in line and "missing" in line


def test_bench_compare_writes_nothing_without_plots(tmp_path: Path) -> None:
    res = tmp_path / "r.json"
    assert edgekd("bench", INT8, "--wav", CLIP, "--repeats", "1", "--json", res, cwd=tmp_path).returncode == 0
    before = sorted(p.name for p in tmp_path.rglob("*"))
    table = edgekd("bench", "compare", res, cwd=tmp_path)
    assert table.returncode == 0 and "| model [backend]" in table.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_bench_result_carries_provenance_and_the_threads_used(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    p = edgekd("bench", INT8, "--wav", CLIP, "--repeats", "1", "--threads", "2", "--json", out)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    prov = r["provenance"]
    assert prov["bundle_sha256"] == sha256_file(INT8 / "manifest.json") and prov["bundle"] == str(INT8)
    assert prov["command"].startswith("edgekd bench ") and "--threads 2" in prov["command"]
    assert {"cpu", "libraries", "date"} <= set(prov["machine"]) and prov["measured"]
    assert r["threads"] == 2  # read back from the onnxruntime session


def test_progress_in_a_log_is_one_line_per_tenth() -> None:
    log = io.StringIO()  # not a terminal
    with Progress("work", 1000, "clip", delay=0.0, file=log) as bar:
        for _ in range(1000):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("work: 100% (1000/1000 clip")
    quiet = io.StringIO()
    with Progress("work", 1000, "clip", delay=1e9, file=quiet) as bar:  # work shorter than the delay prints nothing
        bar.set(1000)
    assert quiet.getvalue() == ""


def test_progress_in_a_log_is_never_silent_for_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow run (a tenth takes 5 minutes) still prints a line a minute, with the time left at its rate."""
    import edgekd.core.progress as progress

    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    log = io.StringIO()
    with Progress("work", 100, "step", file=log) as bar:
        for _ in range(20):  # 20 steps of 15 s: 300 s, two tenths
            clock[0] += 15.0
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert len(lines) == 6, lines  # at 60, 120, 150 (a tenth), 210, 270 and 300 s (a tenth)
    assert lines[0] == "work: 4% (4/100 step, 60 s, 0.0667 step/s, about 1440 s left)"
