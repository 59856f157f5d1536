"""The device closure must not pull in host-side libraries (DESIGN.md section 5)."""

import subprocess
import sys

HEAVY = ("torch", "onnx", "librosa", "scipy", "sklearn", "tensorflow", "onnxscript")


def _loaded_after(code: str) -> set[str]:
    probe = code + f"\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return {m.split(".")[0] for m in out.stdout.split()}


DEVICE_MODULES = ("edgekd", "edgekd.runtime", "edgekd.runtime.manifest", "edgekd.runtime.sed_stream", "edgekd.runtime.verifier",
                  "edgekd.bench", "edgekd.core.errors",
                  "edgekd.core.fsutil", "edgekd.core.procutil", "edgekd.core.progress", "edgekd.eval.matching", "edgekd.eval.kws",
                  "edgekd.eval.tune", "edgekd.eval.wakeword", "edgekd.eval.sed", "edgekd.eval.sed_metrics", "firmware_bridge")


def test_runtime_eval_bench_and_bridge_import_no_heavy_libraries() -> None:
    assert _loaded_after("import " + ", ".join(DEVICE_MODULES)) == set()


def test_loading_and_running_a_bundle_imports_no_torch(shipped_bundle) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import numpy as np, edgekd\n"
        f"d = edgekd.load_model({str(shipped_bundle)!r})\n"
        "d.create_stream().accept_waveform(np.zeros(16000, np.float32))\n"
    )
    assert _loaded_after(code) == set()


def test_cli_help_and_run_import_no_torch() -> None:
    assert _loaded_after("from edgekd.cli import app") == set()
    out = subprocess.run([sys.executable, "-m", "edgekd", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout
