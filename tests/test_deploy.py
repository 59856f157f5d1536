"""firmware_bridge against a real OpenSSH server on 127.0.0.1 standing in for a board.

One sshd and one board folder for the module: the first deploy creates the board's venv from the wheelhouse
(`make wheelhouse`, offline), later deploys reuse it. The board folder's name holds a space, a ";" and a "$(...)",
so every remote command is also an injection test.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.sshd import Sshd, sshd_available, start_sshd

REPO = Path(__file__).resolve().parents[1]
WHEELHOUSE = REPO / ".edgekd-cache" / "wheelhouse"
HOST = f"{getpass.getuser()}@127.0.0.1"
INT8 = REPO / "models" / "kws12-dscnn-kd-int8"
FP32 = REPO / "models" / "kws12-dscnn-kd"

pytestmark = [
    pytest.mark.skipif(not sshd_available(), reason="openssh-server is not installed (make test installs it when root)"),
    pytest.mark.skipif(not any(WHEELHOUSE.glob("onnxruntime-*.whl")), reason="no offline wheelhouse for the board: run `make wheelhouse`"),
]


def edgekd(*args: str | Path, ssh: Sshd | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "edgekd", *map(str, args), *(ssh.ssh_args() if ssh else [])]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def one_error_line(p: subprocess.CompletedProcess[str]) -> str:
    """The failure is exit 2 and exactly one `error:` line, no traceback."""
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, p.stderr
    return errors[0]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()
    assert server.proc.poll() is not None


TOKEN = secrets.token_hex(4)


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("board") / f"edgekd board; touch PWNED_{TOKEN} $(touch PWNED_{TOKEN}_B)"


@pytest.fixture(scope="module")
def local_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shipped bundles copied under a local folder name with a space and a ';'."""
    root = tmp_path_factory.mktemp("local") / "my bundles; rm -rf x"
    out = {}
    for src in (INT8, FP32):
        out[src.name] = Path(shutil.copytree(src, root / src.name))
    return out


@pytest.fixture(scope="module")
def deployed(sshd: Sshd, board_dir: Path, local_bundles: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    """First deploy: installs the runtime from the wheelhouse into a fresh venv on the board."""
    return edgekd("deploy", local_bundles[INT8.name], HOST, "--wheelhouse", WHEELHOUSE, "--remote-dir", board_dir, ssh=sshd)


def _no_injection(board_dir: Path) -> None:
    for where in (Path.home(), board_dir.parent, Path.cwd(), REPO):
        assert not list(where.glob(f"PWNED_{TOKEN}*")), f"a remote command ran an injected `touch` in {where}"


def test_board_info_reports_this_machine(sshd: Sshd, board_dir: Path) -> None:
    p = edgekd("board", "info", HOST, "--json", "--remote-dir", board_dir, ssh=sshd)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["arch"] == platform.machine()
    assert info["glibc"] == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    assert info["cores"] == os.cpu_count()
    assert info["disk_free_bytes"] > 0 and info["python"].startswith("3.")


def test_deploy_installs_runtime_selftests_and_switches_current(deployed: subprocess.CompletedProcess[str], board_dir: Path, sshd: Sshd) -> None:
    assert deployed.returncode == 0, deployed.stderr
    assert "PASS golden output" in deployed.stderr and "FAIL" not in deployed.stderr
    cur = os.readlink(board_dir / "current")
    assert cur.startswith("bundles/kws12-dscnn-kd-int8-") and deployed.stdout.strip() == cur
    assert not (board_dir / "previous").exists()
    assert list((board_dir / "staging").iterdir()) == []  # uploads and wheels cleaned up
    # the board's own runtime runs `current` (no torch in that venv)
    py = board_dir / "venv" / "bin" / "python"
    assert subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0
    run = subprocess.run([str(py), "-m", "edgekd", "run", str(board_dir / "current"), "--wav", str(INT8 / "golden" / "clip.wav")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert [json.loads(ln)["label"] for ln in run.stdout.splitlines()] == [d["label"] for d in json.loads((INT8 / "golden" / "detections.json").read_text())]
    _no_injection(board_dir)


def test_remote_bench_brings_json_home(deployed: subprocess.CompletedProcess[str], board_dir: Path, sshd: Sshd, tmp_path: Path,
                                       local_bundles: dict[str, Path]) -> None:
    assert deployed.returncode == 0
    for bundle in ("current", local_bundles[FP32.name]):
        p = edgekd("bench", bundle, "--remote", HOST, "--wav", INT8 / "golden" / "clip.wav", "--repeats", "1", "--remote-dir", board_dir,
                   "--results-dir", tmp_path / "results", "--json", tmp_path / "r.json", ssh=sshd)
        assert p.returncode == 0, p.stderr
        res = json.loads((tmp_path / "r.json").read_text())
        assert res["cpu_ms_per_audio_s"] > 0 and res["machine"]["arch"] == platform.machine()
        assert res["board"]["destination"] == HOST
        want = "kws12-dscnn-kd-int8" if bundle == "current" else "kws12-dscnn-kd"
        assert res["bundle"] == want
        saved = tmp_path / "results" / "127.0.0.1" / f"{want}-onnx-whole.json"
        assert json.loads(saved.read_text())["cpu_ms_per_audio_s"] == res["cpu_ms_per_audio_s"]
    assert list((board_dir / "staging").iterdir()) == []
    _no_injection(board_dir)


def test_redeploy_corrupt_bundle_selftest_mismatch_and_rollback(deployed: subprocess.CompletedProcess[str], board_dir: Path, sshd: Sshd,
                                                                local_bundles: dict[str, Path], tmp_path: Path) -> None:
    assert deployed.returncode == 0
    first = os.readlink(board_dir / "current")
    # a newer bundle switches current; the old one becomes previous
    p = edgekd("deploy", local_bundles[FP32.name], HOST, "--remote-dir", board_dir, ssh=sshd)
    assert p.returncode == 0, p.stderr
    assert "reusing the runtime" in p.stderr
    second = os.readlink(board_dir / "current")
    assert second.startswith("bundles/kws12-dscnn-kd-") and second != first
    assert os.readlink(board_dir / "previous") == first

    # a corrupted file: refused before anything moves
    bad = Path(shutil.copytree(FP32, tmp_path / "corrupt"))
    data = bytearray((bad / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "model.onnx").write_bytes(bytes(data))
    line = one_error_line(edgekd("deploy", bad, HOST, "--remote-dir", board_dir, ssh=sshd))
    assert "refusing to deploy" in line and "model.onnx" in line
    assert os.readlink(board_dir / "current") == second

    # files intact by sha256 but the golden output disagrees: the board's self-test refuses it before the switch
    mismatch = Path(shutil.copytree(FP32, tmp_path / "mismatch"))
    out = np.load(mismatch / "golden" / "output.npy")
    np.save(mismatch / "golden" / "output.npy", out + 1.0)
    man = json.loads((mismatch / "manifest.json").read_text())
    man["files"]["golden/output.npy"] = hashlib.sha256((mismatch / "golden" / "output.npy").read_bytes()).hexdigest()
    (mismatch / "manifest.json").write_text(json.dumps(man, indent=2))
    line = one_error_line(edgekd("deploy", mismatch, HOST, "--remote-dir", board_dir, ssh=sshd))
    assert "before the switch" in line and "golden" in line and f"still points at {Path(second).name}" in line
    assert os.readlink(board_dir / "current") == second
    assert list((board_dir / "staging").iterdir()) == []
    # and the current bundle still runs
    st = subprocess.run([str(board_dir / "venv" / "bin" / "python"), "-m", "edgekd", "selftest", str(board_dir / "current")], capture_output=True, text=True)
    assert st.returncode == 0, st.stdout + st.stderr

    # rollback swaps current and previous; a second rollback swaps back
    p = edgekd("rollback", HOST, "--remote-dir", board_dir, ssh=sshd)
    assert p.returncode == 0, p.stderr
    assert os.readlink(board_dir / "current") == first and os.readlink(board_dir / "previous") == second
    p = edgekd("rollback", HOST, "--remote-dir", board_dir, ssh=sshd)
    assert p.returncode == 0 and os.readlink(board_dir / "current") == second

    # redeploying what is current is harmless
    p = edgekd("deploy", local_bundles[FP32.name], HOST, "--remote-dir", board_dir, ssh=sshd)
    assert p.returncode == 0 and os.readlink(board_dir / "current") == second
    _no_injection(board_dir)


def test_service_without_systemd_is_refused_before_the_switch(deployed: subprocess.CompletedProcess[str], board_dir: Path, sshd: Sshd,
                                                              local_bundles: dict[str, Path]) -> None:
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs here: installing a real unit on the test machine is not done by tests")
    assert deployed.returncode == 0
    before = os.readlink(board_dir / "current")
    other = FP32 if before.startswith(f"bundles/{INT8.name}-") else INT8  # a bundle that would move `current`
    line = one_error_line(edgekd("deploy", local_bundles[other.name], HOST, "--remote-dir", board_dir, "--service", ssh=sshd))
    assert "systemd is not running" in line and "nothing was changed" in line
    assert os.readlink(board_dir / "current") == before
    line = one_error_line(edgekd("service", "status", HOST, ssh=sshd))
    assert "systemd is not running" in line and "needed to show the service's status" in line
    assert "'~" not in line  # the hand-run command keeps ~ outside quotes, so a shell expands it


def test_unknown_host_key_is_refused_unless_accepted(sshd: Sshd, tmp_path: Path, board_dir: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    base = ["board", "info", HOST, "--port", str(sshd.port), "--identity", str(sshd.identity), "--known-hosts", str(empty), "--remote-dir", str(board_dir)]
    line = one_error_line(edgekd(*base))
    assert "not in known_hosts" in line and "--accept-new-host-key" in line
    p = edgekd(*base, "--accept-new-host-key")
    assert p.returncode == 0, p.stderr
    assert sshd.host_pubkey.split()[1] in empty.read_text()  # recorded, so the next plain call passes
    assert edgekd(*base).returncode == 0
    # a changed key is refused even with --accept-new-host-key
    empty.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOaM4bhmpCCHcvoKq7jE3lZ+3Lj5TGNu4p7HhO5dXM2o\n")
    line = one_error_line(edgekd(*base, "--accept-new-host-key"))
    assert "CHANGED" in line


def test_connection_failures_are_one_line(sshd: Sshd, tmp_path: Path) -> None:
    # login refused: a key the board does not know
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    line = one_error_line(edgekd("board", "info", HOST, "--port", str(sshd.port), "--identity", tmp_path / "stranger",
                                 "--known-hosts", sshd.known_hosts))
    assert "refused" in line and "ssh-copy-id" in line
    # nothing listening
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    line = one_error_line(edgekd("board", "info", HOST, "--port", str(dead), "--identity", sshd.identity, "--known-hosts", sshd.known_hosts))
    assert "refused" in line and "sshd" in line
    # a host name with a space and a ';' is a (bad) host name, never a command
    marker = tmp_path / "INJECTED"
    line = one_error_line(edgekd("board", "info", f"{HOST}; touch {marker}", ssh=sshd))
    assert "host name" in line
    # a "host" that looks like an ssh option stays a host name (ssh gets "--" before it)
    one_error_line(edgekd("board", "info", *sshd.ssh_args(), "--", "-oProxyCommand=touch " + str(marker)))
    assert not marker.exists()


def test_board_checks_refuse_before_copying(sshd: Sshd, tmp_path: Path, board_dir: Path) -> None:
    # wrong arch for the preset
    other = "pi5" if platform.machine() == "x86_64" else "linux-x86_64"
    line = one_error_line(edgekd("deploy", INT8, HOST, "--target", other, "--remote-dir", tmp_path / "b1", ssh=sshd))
    assert f"--target {other}" in line and platform.machine() in line
    # a wheelhouse without a backend wheel for this board
    wh = tmp_path / "wh"
    wh.mkdir()
    for p in WHEELHOUSE.glob("numpy-*.whl"):
        shutil.copy(p, wh)
    line = one_error_line(edgekd("deploy", INT8, HOST, "--wheelhouse", wh, "--remote-dir", tmp_path / "b2", ssh=sshd))
    assert "no onnxruntime wheel" in line and "pip download" in line
    assert not (tmp_path / "b1").exists() and not (tmp_path / "b2").exists()
    # unknown preset
    assert "unknown --target" in one_error_line(edgekd("deploy", INT8, HOST, "--target", "pi9", "--remote-dir", tmp_path / "b3", ssh=sshd))


@pytest.mark.skipif(os.geteuid() != 0, reason="a full disk is simulated with a 2 MB tmpfs, which needs root to mount")
def test_full_disk_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    mnt = tmp_path / "small disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("this container may not mount a tmpfs")
    try:
        line = one_error_line(edgekd("deploy", INT8, HOST, "--wheelhouse", WHEELHOUSE, "--remote-dir", mnt / "edgekd", ssh=sshd))
        assert "MB free" in line and "needs about" in line
        assert not (mnt / "edgekd").exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
