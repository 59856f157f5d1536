"""firmware_bridge.c_array: the generated C++ compiles and embeds exactly the model's bytes."""

import shutil
import subprocess
from pathlib import Path

import pytest

from firmware_bridge import c_array_source

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_generated_array_compiles_and_matches_the_model(tmp_path: Path) -> None:
    model = (REPO / "models" / "kws12-dscnn-kd-int8" / "model.tflite").read_bytes()
    header, source = c_array_source(model, "g_model")
    (tmp_path / "g_model.h").write_text(header)
    (tmp_path / "g_model.cc").write_text(source)
    (tmp_path / "main.cc").write_text(
        '#include <cstdio>\n#include <cstdint>\n#include "g_model.h"\n'
        "int main() { if (reinterpret_cast<std::uintptr_t>(g_model) % 16) return 3;\n"
        "  fwrite(g_model, 1, g_model_len, stdout); return 0; }\n"
    )
    subprocess.run(["g++", "-std=c++17", "-O0", "-o", str(tmp_path / "dump"), str(tmp_path / "main.cc"), str(tmp_path / "g_model.cc")],
                   check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "dump")], capture_output=True, check=True).stdout
    assert out == model and len(model) > 1000


def test_symbol_must_be_a_c_identifier() -> None:
    with pytest.raises(ValueError, match="C identifier"):
        c_array_source(b"\x00", "1bad-name")
