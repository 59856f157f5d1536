"""The board runtime on emulated aarch64 (Raspberry Pi 4 = cortex-a72, Pi 5 = cortex-a76).

Builds a Debian bookworm arm64 rootfs in a temporary folder, installs only the kit's wheel and its
runtime dependencies (numpy, onnxruntime, ai-edge-litert, typer), and runs `edgekd selftest` (hashes,
golden output, golden WAV streamed) on every shipped bundle with both backends, and `edgekd run --wav`
through the CLI on one bundle per task and backend. Outputs must match the x86 golden files within each
manifest's tolerances. Speed under emulation means nothing and is not looked at.
"""

import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.aarch64.rootfs import Rootfs, emulation_mode

REPO = Path(__file__).resolve().parents[1]
MODE, REASON = emulation_mode()
pytestmark = [pytest.mark.aarch64, pytest.mark.skipif(MODE is None, reason=REASON)]


@pytest.fixture(scope="module")
def rootfs():  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(prefix="edgekd-arm64-") as d:
        base = Path(d)
        wheels = base / "wheels"
        wheels.mkdir()
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)],
                       check=True, capture_output=True)
        fs = Rootfs(base, MODE)  # type: ignore[arg-type]
        try:
            fs.build(wheels, ["edgekd[onnx,litert]"])
            fs.add(REPO / "models", "/bundles")
            fs.add(REPO / "tests" / "aarch64", "/driver")
            fs.prepare()
            yield fs
        finally:
            fs.close()


def test_rootfs_has_no_host_libraries(rootfs: Rootfs) -> None:
    site = rootfs.root / "opt" / "site"
    names = {p.name.split("-")[0].lower() for p in site.iterdir()}
    assert {"numpy", "onnxruntime", "ai_edge_litert", "edgekd"} <= names
    assert not names & {"torch", "scipy", "librosa", "tensorflow", "onnx"}, names & {"torch", "scipy", "librosa", "tensorflow", "onnx"}
    # the rootfs's own files only: /proc, /sys and /dev are the host's mounts (a process may vanish mid-walk)
    tops = [d for d in rootfs.root.iterdir() if d.is_dir() and not d.is_symlink() and d.name not in ("proc", "sys", "dev", "run", "tmp")]
    assert tops and not [p for d in tops for p in d.glob("**/site-packages/torch")]


def test_selftest_and_run_on_pi4_and_pi5(rootfs: Rootfs) -> None:
    cpus = ("cortex-a72", "cortex-a76")
    with ThreadPoolExecutor(len(cpus)) as pool:
        # a hang guard, not a speed goal: every bundle of models/ on both backends under qemu, two CPUs at once (nine
        # bundles since 2026-12-06; 600 s was reached on a 2-core machine with other work running)
        procs = list(pool.map(lambda cpu: rootfs.python(["/driver/driver.py", "/bundles"], cpu, timeout=1500), cpus))
    manifests = {p.parent.name: json.loads(p.read_text()) for p in sorted((REPO / "models").glob("*/manifest.json"))}
    bundles = sorted(manifests)
    backends = {b: 2 if m.get("tflite_file") else 1 for b, m in manifests.items()}
    assert all(backends[b] == 2 for b, m in manifests.items() if m["task"] == "kws")  # every KWS bundle: both backends
    for cpu, p in zip(cpus, procs, strict=True):
        assert p.returncode == 0, f"{cpu}: {p.stderr[-2000:]}"
        out = json.loads(p.stdout.strip().splitlines()[-1])
        assert out["machine"] == "aarch64"
        assert out["heavy_modules_loaded"] == []
        assert out["bench_fields_ok"], "edgekd bench did not produce a full result on aarch64"
        assert sorted({r["bundle"] for r in out["results"]}) == bundles
        assert len(out["results"]) == sum(backends.values())  # both backends wherever the bundle has a TFLite graph
        ran = [(r["task"], r["backend"]) for r in out["results"] if r["run"]]  # the CLI once per task and backend
        assert sorted(ran) == sorted({(r["task"], r["backend"]) for r in out["results"]})
        for r in out["results"]:
            where = f"{cpu} {r['bundle']} {r['backend']}"
            assert r["selftest_ok"], (where, r["selftest"])
            assert any("golden stream" in line for line in r["selftest"]), where  # every bundle streamed its golden WAV
            if not r["run"]:
                continue
            assert r["run_exit"] == 0, where
            assert r["run_detections"] == r["expected_detections"], where
            assert len(r["run_detections"]) >= 3, where
