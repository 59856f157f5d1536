"""firmware_bridge parts without a board: the systemd unit, the board-side symlink bookkeeping, wheel tags,
and `edgekd export c-array` compiled with g++."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_bridge import board_ops
from firmware_bridge.probe import BoardInfo
from firmware_bridge.service import unit_text
from firmware_bridge.wheels import wheel_fits

REPO = Path(__file__).resolve().parents[1]
INT8 = REPO / "models" / "kws12-dscnn-kd-int8"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze (package systemd) is not installed")
def test_unit_with_hostile_paths_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    root = tmp_path / "edge kd%d $HOME"
    (root / "venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, root / "venv" / "bin" / "python")
    unit = tmp_path / "edgekd.service"
    unit.write_text(unit_text(str(root), "root", "litert", device="USB $Mic"))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = unit.read_text()
    assert "Restart=on-failure" in text and "User=root" in text and "--mic" in text
    assert '"--backend" "litert"' in text and '"USB $$Mic"' in text


def test_unit_text_rejects_nothing_silently() -> None:
    text = unit_text("/home/pi/edgekd", "pi")
    exec_line = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    assert exec_line == ('ExecStart="/home/pi/edgekd/venv/bin/python" "-m" "edgekd" "run" "/home/pi/edgekd/current" "--mic" '
                         '"--backend" "onnx" "--threads" "1"')


def test_jetson_unit_asks_for_gpu_providers_and_the_runtime_filters_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgekd.runtime.backends.onnx import providers
    from firmware_bridge.targets import TARGETS

    text = unit_text("/opt/edgekd", "nvidia", ort_providers=TARGETS["jetson-orin"].providers)
    assert "Environment=EDGEKD_ORT_PROVIDERS=TensorrtExecutionProvider,CUDAExecutionProvider" in text
    monkeypatch.setenv("EDGEKD_ORT_PROVIDERS", "TensorrtExecutionProvider,CUDAExecutionProvider")
    assert providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    monkeypatch.delenv("EDGEKD_ORT_PROVIDERS")
    assert providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def _bundle(root: Path, name: str) -> str:
    (root / "bundles" / name).mkdir(parents=True)
    (root / "bundles" / name / "manifest.json").write_text("{}")
    return f"bundles/{name}"


def test_switch_rollback_and_prune(tmp_path: Path) -> None:
    a, b, c = (_bundle(tmp_path, n) for n in "abc")
    assert board_ops.switch(tmp_path, a) == {"current": a, "previous": ""}
    assert board_ops.switch(tmp_path, b) == {"current": b, "previous": a}
    assert board_ops.switch(tmp_path, b) == {"current": b, "previous": a}  # same bundle again: previous kept
    assert board_ops.rollback(tmp_path) == {"current": a, "previous": b}
    assert board_ops.switch(tmp_path, c) == {"current": c, "previous": a}
    assert (tmp_path / "current" / "manifest.json").is_file() and not (tmp_path / "current.new").exists()
    for i in range(5):
        _bundle(tmp_path, f"old{i}")
    removed = board_ops.prune(tmp_path, keep=1)
    assert len(removed) == 5 and {a, c} <= {f"bundles/{p.name}" for p in (tmp_path / "bundles").iterdir()}
    with pytest.raises(SystemExit, match="holds no bundle"):
        board_ops.switch(tmp_path, "bundles/missing")


def test_rollback_without_previous_is_refused(tmp_path: Path) -> None:
    board_ops.switch(tmp_path, _bundle(tmp_path, "only"))
    with pytest.raises(SystemExit, match="no previous bundle"):
        board_ops.rollback(tmp_path)


def _board(arch: str, python: str, glibc: str) -> BoardInfo:
    return BoardInfo(arch=arch, os="", python=python, python_path="", glibc=glibc, cpu="", cpu_flags=[], cores=4, mem_bytes=0,
                     board_model="", jetson_l4t="", disk_free_bytes=0, disk_path="", audio_cards=[], audio_inputs=[], systemd=True,
                     is_root=False, venv_python="", edgekd_version="", current="", user="pi", edgekd_dir="/home/pi/edgekd")


@pytest.mark.parametrize(("wheel", "arch", "py", "glibc", "fits"), [
    ("onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_aarch64.whl", "aarch64", "3.11.2", "2.36", True),
    ("onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_aarch64.whl", "aarch64", "3.11.2", "2.27", False),  # glibc too old
    ("onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl", "aarch64", "3.11.2", "2.36", False),   # other arch
    ("onnxruntime-1.32.0-cp312-cp312-manylinux_2_28_aarch64.whl", "aarch64", "3.11.2", "2.36", False),  # other Python
    ("protobuf-7.36.2-cp310-abi3-manylinux2014_aarch64.whl", "aarch64", "3.12.1", "2.35", True),         # abi3 + legacy tag
    ("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", "x86_64", "3.11.7", "2.27", True),
    ("typer-0.29.2-py3-none-any.whl", "aarch64", "3.10.12", "2.35", True),
])
def test_wheel_tags_against_a_board(wheel: str, arch: str, py: str, glibc: str, fits: bool) -> None:
    assert wheel_fits(wheel, _board(arch, py, glibc)) is fits


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_c_array_export_compiles_with_settings_and_matches_the_model(tmp_path: Path) -> None:
    out = tmp_path / "fw"
    p = subprocess.run([sys.executable, "-m", "edgekd", "export", "c-array", str(INT8), "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in out.iterdir()) == ["model_data.cc", "model_data.h", "model_settings.h"]
    (tmp_path / "main.cc").write_text(
        '#include <cstdio>\n#include <cstdint>\n#include <cstring>\n#include "model_data.h"\n#include "model_settings.h"\n'
        "int main() {\n"
        "  if (reinterpret_cast<std::uintptr_t>(g_model) % 16) return 3;\n"
        "  if (std::strcmp(edgekd::kLabels[0], \"yes\") || edgekd::kLabelCount != 12) return 4;\n"
        "  if (edgekd::kInputShape[1] != edgekd::kWindowFrames || edgekd::kInputShape[2] != edgekd::kMelBins) return 5;\n"
        "  if (sizeof(edgekd::InputType) != 1 || edgekd::kInputScale <= 0.0f) return 6;\n"
        "  fwrite(g_model, 1, g_model_len, stdout); return 0; }\n")
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(out), "-o", str(tmp_path / "dump"), str(tmp_path / "main.cc"),
                    str(out / "model_data.cc")], check=True, capture_output=True)
    dumped = subprocess.run([str(tmp_path / "dump")], capture_output=True)
    assert dumped.returncode == 0
    assert dumped.stdout == (INT8 / "model.tflite").read_bytes()


def test_c_array_export_needs_a_tflite(tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(REPO / "models" / "kws12-dscnn-stream-kd", tmp_path / "b"))
    import json

    man = json.loads((bundle / "manifest.json").read_text())
    if man.get("tflite_file"):
        man["tflite_file"] = ""
        (bundle / "manifest.json").write_text(json.dumps(man))
    p = subprocess.run([sys.executable, "-m", "edgekd", "export", "c-array", str(bundle), "--out", str(tmp_path / "fw")], capture_output=True, text=True)
    assert p.returncode == 2 and "no .tflite model" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "fw").exists()


def test_a_two_stage_bundle_needs_onnxruntime_on_a_litert_board_and_its_c_array_says_so(tmp_path: Path) -> None:
    """The shipped alexa bundle has a verifier (onnxruntime): a LiteRT deploy installs the onnx extra too, a KWS bundle
    without one does not; its C-array header says the verifier is not in the array (and compiles)."""
    from edgekd.runtime.manifest import ModelManifest
    from firmware_bridge.deploy import runtime_extras

    pair, plain = ModelManifest.load(REPO / "models" / "alexa-dscnn-stream-64-kd-int8"), ModelManifest.load(INT8)
    assert pair.verifier_block is not None and plain.verifier_block is None
    assert runtime_extras(pair, "litert") == ("litert", "onnx") and runtime_extras(pair, "onnx") == ("onnx",)
    assert runtime_extras(plain, "litert") == ("litert",)
    out = tmp_path / "fw"
    p = subprocess.run([sys.executable, "-m", "edgekd", "export", "c-array", str(REPO / "models" / "alexa-dscnn-stream-64-kd-int8"),
                        "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "second stage" in (out / "model_settings.h").read_text()
    assert "second stage" not in subprocess.run([sys.executable, "-m", "edgekd", "export", "c-array", str(INT8), "--out", str(tmp_path / "p")],
                                                capture_output=True, text=True, check=True).stderr + (tmp_path / "p" / "model_settings.h").read_text()
    (tmp_path / "main.cc").write_text('#include "model_settings.h"\nint main() { return edgekd::kLabelCount == 3 ? 0 : 1; }\n')
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(out), "-o", str(tmp_path / "m"), str(tmp_path / "main.cc")], check=True,
                   capture_output=True)
    assert subprocess.run([str(tmp_path / "m")]).returncode == 0
