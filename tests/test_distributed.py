"""Scale-out on CPU: torchrun + gloo on 127.0.0.1, the sharded teacher-logit cache, resume after SIGKILL.

Every run is the real `edgekd` command (under `torchrun --standalone` where it says so) on the tiny synthesized
data set; losses are compared between runs made side by side here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

ENV = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", EDGEKD_DIST_BACKEND="gloo")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "edgekd"]
EDGEKD = [sys.executable, "-m", "edgekd"]


def run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    p = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=600, **kw)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def metrics(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["metrics"]


@pytest.fixture(scope="module")
def work(tiny_data: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A teacher trained briefly on the tiny data (the cnn-teacher, so it differs from the student)."""
    root = tmp_path_factory.mktemp("dist")
    cache = root / "cache"
    teacher = root / "teacher.pt"
    run([*EDGEKD, "train", "teacher", "--data", str(tiny_data), "--out", str(teacher), "--epochs", "1", "--views", "1", "--threads", "1",
         "--batch-size", "32", "--cache-dir", str(cache)])
    return {"root": root, "cache": cache, "teacher": teacher, "other_teacher": tiny_checkpoint, "data": tiny_data}


def _student(work: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["train", "student", "--data", str(work["data"]), "--out", str(out), "--epochs", "3", "--views", "1", "--threads", "1",
            "--batch-size", "16", "--cache-dir", str(work["cache"]), *extra]


def test_two_process_torchrun_matches_one_process(work: dict[str, Path]) -> None:
    one, two = work["root"] / "one.pt", work["root"] / "two.pt"
    run([*EDGEKD, *_student(work, one, "--teacher", str(work["teacher"]))])
    p = run([*TORCHRUN, *_student(work, two, "--teacher", str(work["teacher"]))])
    assert p.stdout.count("saved") == 0 and p.stderr.count(f"saved {two}") == 1  # rank 0 alone reports and writes
    m1, m2 = metrics(one), metrics(two)
    assert m2["processes"] == 2 and m1["processes"] == 1
    assert m1["train_steps"] == m2["train_steps"] > 0
    # same global batches and random streams; BatchNorm statistics per rank and summation order differ slightly
    assert m2["final_train_loss"] == pytest.approx(m1["final_train_loss"], rel=0.03)
    assert m1["train_examples_seen"] == m2["train_examples_seen"]


def test_sharded_cache_two_workers_and_torchrun_equal_one(work: dict[str, Path]) -> None:
    outs = {}
    for name, argv in (("w1", [*EDGEKD, "teacher", "cache", "--workers", "1"]), ("w2", [*EDGEKD, "teacher", "cache", "--workers", "2"]),
                       ("tr2", [*TORCHRUN, "teacher", "cache"])):
        out = work["root"] / f"cache-{name}"
        run([*argv, "--teacher", str(work["teacher"]), "--data", str(work["data"]), "--out", str(out), "--views", "1",
             "--cache-dir", str(work["cache"])])
        outs[name] = out
    idx = {k: json.loads((v / "index.json").read_text()) for k, v in outs.items()}
    assert [len(i["shards"]) for i in idx.values()] == [1, 2, 2]
    for k in ("teacher", "frontend", "features"):
        assert idx["w1"][k] == idx["w2"][k] == idx["tr2"][k]
    assert idx["w1"]["features"]["files"] and idx["w1"]["teacher"]["sha256"]
    from edgekd.train.logit_cache import LogitCache

    arrays = {k: LogitCache(v, idx[k]).to_array() for k, v in outs.items()}
    assert arrays["w1"].shape[0] == idx["w1"]["features"]["rows"] > 0
    np.testing.assert_allclose(arrays["w2"], arrays["w1"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(arrays["tr2"], arrays["w1"], rtol=0, atol=1e-5)
    # memory-mapped row reads across the shard boundary
    c = LogitCache(outs["w2"], idx["w2"])
    rows = np.array([0, idx["w2"]["shards"][1]["start"] - 1, idx["w2"]["shards"][1]["start"], len(c) - 1])
    np.testing.assert_array_equal(c[rows], arrays["w2"][rows])

    # a student trained from the prebuilt cache equals one that built its own cache
    a, b = work["root"] / "from-cache.pt", work["root"] / "from-teacher.pt"
    run([*EDGEKD, *_student(work, a, "--teacher-cache", str(outs["w2"]), "--epochs", "1")])
    run([*EDGEKD, *_student(work, b, "--teacher", str(work["teacher"]), "--epochs", "1")])
    assert metrics(a)["final_train_loss"] == pytest.approx(metrics(b)["final_train_loss"], rel=1e-5)


def _one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1
    return lines[0]


def test_cache_from_another_teacher_frontend_or_data_is_refused(work: dict[str, Path], tmp_path: Path) -> None:
    out = work["root"] / "cache-check"
    run([*EDGEKD, "teacher", "cache", "--teacher", str(work["teacher"]), "--data", str(work["data"]), "--out", str(out), "--views", "1",
         "--cache-dir", str(work["cache"])])
    student = tmp_path / "s.pt"
    # another teacher
    p = subprocess.run([*EDGEKD, *_student(work, student, "--teacher", str(work["other_teacher"]), "--teacher-cache", str(out))],
                       capture_output=True, text=True, env=ENV)
    assert "made by another teacher" in _one_line_error(p)
    # other data: a different number of views changes the feature set
    p = subprocess.run([*EDGEKD, *_student(work, student, "--teacher-cache", str(out), "--views", "2")], capture_output=True, text=True, env=ENV)
    assert "made for other data" in _one_line_error(p)
    # another frontend
    index = json.loads((out / "index.json").read_text())
    index["frontend"]["n_mels"] = 64
    (out / "index.json").write_text(json.dumps(index))
    p = subprocess.run([*EDGEKD, *_student(work, student, "--teacher-cache", str(out))], capture_output=True, text=True, env=ENV)
    line = _one_line_error(p)
    assert "another frontend" in line and "n_mels 64 vs 40" in line
    assert not student.exists()


def test_sigkill_mid_epoch_then_resume_reaches_the_same_run(work: dict[str, Path]) -> None:
    argv = ["--epochs", "25", "--save-every", "1", "--teacher", str(work["teacher"])]
    full, killed = work["root"] / "full.pt", work["root"] / "killed.pt"
    run([*EDGEKD, *_student(work, full, *argv)])
    steps_per_epoch = metrics(full)["train_steps"] // 25
    assert steps_per_epoch >= 2
    state = Path(f"{killed}.state")
    proc = subprocess.Popen([*EDGEKD, *_student(work, killed, *argv)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    step = -1
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if state.is_file():
            try:
                step = int(torch.load(state, weights_only=True)["step"])
            except Exception:  # caught mid-rename on a slow disk: look again
                step = -1
            if step >= steps_per_epoch + 1 and step % steps_per_epoch:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed mid-epoch"
    assert not killed.exists() and state.is_file()
    p = run([*EDGEKD, *_student(work, killed, *argv, "--resume")])
    assert not state.exists()  # a finished run drops its state
    m_full, m_res = metrics(full), metrics(killed)
    assert m_res["train_steps"] == m_full["train_steps"]
    assert m_res["final_train_loss"] == pytest.approx(m_full["final_train_loss"], rel=1e-4)
    assert m_res["val_accuracy"] == pytest.approx(m_full["val_accuracy"])
    assert "saved" in p.stderr


def test_resume_refuses_state_of_another_run(work: dict[str, Path]) -> None:
    out = work["root"] / "other.pt"
    state = Path(f"{out}.state")
    torch.save({"format": "edgekd-train-state-1", "fingerprint": {"arch": "dscnn", "batch_size": 8}}, state)
    p = subprocess.run([*EDGEKD, *_student(work, out, "--no-teacher", "--epochs", "1", "--resume")], capture_output=True, text=True, env=ENV)
    assert "different training run" in _one_line_error(p)
    assert not out.exists()


def test_device_closure_does_not_import_torch_distributed() -> None:
    code = ("import sys, edgekd.runtime, edgekd.bench, firmware_bridge, firmware_bridge.deploy, edgekd.runtime.detector; "
            "print(sorted(m for m in sys.modules if m.startswith('torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
