"""`edgekd bench`: schema smoke test, compare, and bad input. (Benchmarks assert no speed, only sanity.)"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekd.bench.stream import REQUIRED_FIELDS
from edgekd.cli import app
from edgekd.runtime.wav import read_wav, write_wav

runner = CliRunner()


def _short_wav(shipped: Path, tmp: Path, seconds: float) -> Path:
    a = read_wav(shipped / "golden" / "clip.wav")
    p = tmp / f"clip{seconds}.wav"
    write_wav(p, a.samples[: int(seconds * 16000)], 16000)
    return p


def _positive(v: object) -> bool:
    return isinstance(v, (int, float)) and v > 0


def test_bench_smoke_schema(shipped_bundle: Path, tmp_path: Path) -> None:
    wav = _short_wav(shipped_bundle, tmp_path, 3.0)
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["bench", str(shipped_bundle), "--wav", str(wav), "--repeats", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    for key in REQUIRED_FIELDS:
        assert key in r, key
    for key in ("cpu_ms_per_audio_s", "rtf", "peak_rss_mb", "model_bytes", "params", "macs_per_inference", "macs_per_audio_s", "threads"):
        assert _positive(r[key]), (key, r[key])
    lat = r["latency_ms"]
    assert all(_positive(lat[k]) for k in ("p50", "p90", "p99", "max"))
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert r["backend"] == "onnx" and r["backend_version"] and len(r["bundle_sha256"]) == 64
    assert {"cpu", "arch", "cores", "os", "python", "libraries", "date"} <= set(r["machine"])
    assert abs(r["macs_per_inference"] * r["inferences_per_audio_s"] - r["macs_per_audio_s"]) < 1.0


def test_compare_renders_two_results(shipped_bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="plots: the dev extra")
    wav = _short_wav(shipped_bundle, tmp_path, 2.0)
    files = []
    for i, threads in enumerate((1, 2)):
        f = tmp_path / f"r{i}.json"
        args = ["bench", str(shipped_bundle), "--wav", str(wav), "--repeats", "1", "--threads", str(threads), "--json", str(f)]
        assert runner.invoke(app, args).exit_code == 0
        files.append(str(f))
    res = runner.invoke(app, ["bench", "compare", *files, "--plots", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    rows = [ln for ln in res.stdout.splitlines() if ln.startswith("| kws12")]
    assert len(rows) == 2
    for png in ("cpu_ms_per_audio_s.png", "latency_distribution.png"):
        data = (tmp_path / "plots" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def _one_line_error(res, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == 2, res.output
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), res.stderr
    for f in fragments:
        assert f in err[0]


def test_wav_shorter_than_a_window(shipped_bundle: Path, tmp_path: Path) -> None:
    wav = _short_wav(shipped_bundle, tmp_path, 0.5)
    _one_line_error(runner.invoke(app, ["bench", str(shipped_bundle), "--wav", str(wav)]), "shorter than one inference window")


def test_unknown_backend(shipped_bundle: Path, tmp_path: Path) -> None:
    wav = _short_wav(shipped_bundle, tmp_path, 2.0)
    _one_line_error(runner.invoke(app, ["bench", str(shipped_bundle), "--wav", str(wav), "--backend", "cuda"]), "unknown backend")


def test_bundle_relabelled_as_another_task(shipped_bundle: Path, tmp_path: Path) -> None:
    """A KWS bundle whose manifest claims task sed lacks the SED streaming block: one clear line, no traceback."""
    from edgekd.export.bundle import update_manifest

    b = tmp_path / "sed"
    shutil.copytree(shipped_bundle, b)
    update_manifest(b, task="sed")
    wav = _short_wav(shipped_bundle, tmp_path, 2.0)
    _one_line_error(runner.invoke(app, ["bench", str(b), "--wav", str(wav)]), "a sed bundle needs streaming.time_pool")


def test_compare_refuses_a_non_result(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    _one_line_error(runner.invoke(app, ["bench", "compare", str(tmp_path / "x.json")]), "not an edgekd bench result")


def test_inference_latency_helper(shipped_bundle: Path) -> None:
    import edgekd
    from edgekd.bench.latency import inference_latency_ms

    r = inference_latency_ms(edgekd.load_model(shipped_bundle), runs=20, warmup=2)
    assert 0 < r["p50"] <= r["p90"] <= r["p99"] <= r["max"]
    assert np.isfinite(r["p50"])
