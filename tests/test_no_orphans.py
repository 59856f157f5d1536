"""Killing a long command leaves no worker running and no folder that looks complete (SIGKILL mid-run)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _children(pid: int) -> set[int]:
    """Every process whose parent is ``pid``, read from /proc."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> set[int]:  # type: ignore[type-arg,no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        kids = _children(proc.pid)
        if len(kids) >= 2 and ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return kids
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the command did not reach its worker pool in {timeout} s (rc {proc.poll()})")


def _assert_gone(kids: set[int]) -> None:
    deadline = time.time() + 5.0
    while time.time() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)], "worker processes outlived the killed command"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_killed_synthesis_leaves_no_workers_and_no_dataset(tmp_path: Path) -> None:
    out = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "edgekd", "data", "synth-kws", str(out), "--per-word", "400", "--unknown", "10",
                             "--silence", "1", "--workers", "2", "--engines", "espeak", "--cache-dir", str(tmp_path / "cache")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    kids = _kill_when(proc, lambda: any(tmp_path.glob(".data.*/yes/*.wav")))
    _assert_gone(kids)
    assert not out.exists()  # only the temporary .data.*.partial folder, never a dataset that looks complete
    assert all(p.name.startswith(".data.") and p.name.endswith(".partial") for p in tmp_path.iterdir() if p.name != "cache")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_killed_feature_build_leaves_no_workers_and_no_cache(tiny_data: Path, tmp_path: Path) -> None:
    code = ("import sys; from edgekd.data import KWS12_LABELS; from edgekd.train.features import build_feature_set; "
            "build_feature_set(sys.argv[1], KWS12_LABELS, 'train', views=40, cache_dir=sys.argv[2], workers=2)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tiny_data), str(tmp_path / "cache")], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids = _kill_when(proc, lambda: True)  # two children: the pool is working (40 views of every clip take a while)
    _assert_gone(kids)
    assert not list((tmp_path / "cache").glob("features-*.npz"))
