"""`edgekd selftest`: golden checks pass on shipped bundles; a tampered bundle fails naming the file."""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekd.cli import app
from edgekd.runtime.selftest import selftest

REPO = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p.parent for p in (REPO / "models").glob("*/manifest.json"))


def _cases() -> list[tuple[Path, str]]:
    """Every shipped bundle on ONNX Runtime, and on LiteRT where it has a TFLite graph (every KWS bundle does)."""
    import json

    from edgekd.runtime.backends.litert import litert_available

    cases = []
    for b in BUNDLES:
        m = json.loads((b / "manifest.json").read_text())
        assert m.get("tflite_file") or m["task"] == "sed", f"{b.name}: a KWS bundle without a TFLite graph"
        cases += [(b, "onnx")] + ([(b, "litert")] if m.get("tflite_file") and litert_available() else [])
    return cases


@pytest.mark.parametrize(("bundle", "backend"), _cases(), ids=[f"{b.name}-{k}" for b, k in _cases()])
def test_shipped_bundles_pass(bundle: Path, backend: str) -> None:
    checks = selftest(bundle, backend=backend)
    assert all(c.ok for c in checks), [c.line() for c in checks if not c.ok]
    names = [c.name for c in checks]
    assert "golden output" in names and "golden stream" in names and any(n.startswith("sha256 ") for n in names)


def test_at_least_two_bundles_are_shipped() -> None:
    assert len(BUNDLES) >= 2, BUNDLES


def test_tampered_bundle_fails_with_one_line_naming_the_file(shipped_bundle: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(shipped_bundle, b)
    with open(b / "golden" / "input.npy", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x01\x02\x03\x04")
    res = CliRunner().invoke(app, ["selftest", str(b)])
    assert res.exit_code == 2
    assert "FAIL sha256 golden/input.npy" in res.stdout
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "golden/input.npy" in err[0] and err[0].startswith("error: ")


def test_cli_prints_one_line_per_check(shipped_bundle: Path) -> None:
    res = CliRunner().invoke(app, ["selftest", str(shipped_bundle), "--backend", "onnx"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines and all(ln.startswith("PASS ") for ln in lines)
