"""Each cheap bench script runs end to end on tiny material and writes a well-formed result (numbers are not checked
against goals: benchmarks are not tests). The study scripts (kd_study, sed, wakeword, voices_study) share the recipes
that tests/test_*train*.py run on tiny material."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STREAM = REPO / "models" / "kws12-dscnn-stream-kd"
INT8 = REPO / "models" / "kws12-dscnn-kd-int8"


def _bench(script: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / script), *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def clip() -> Path:
    return STREAM / "golden" / "clip.wav"


def test_side_by_side(clip: Path, tmp_path: Path) -> None:
    _bench("side_by_side.py", INT8, STREAM, "--wav", clip, "--rounds", "1", "--json", tmp_path / "s.json")
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert [r["bundle"] for r in rows] == [INT8.name, STREAM.name] and all(r["cpu_ms_per_audio_s"] > 0 for r in rows)
    assert {r["mode"] for r in rows} == {"whole", "stream"}


def test_stream_vs_window(clip: Path, tmp_path: Path) -> None:
    _bench("stream_vs_window.py", "--bundle", STREAM, "--wav", clip, "--out", tmp_path / "sw.json", "--rounds", "1")
    d = json.loads((tmp_path / "sw.json").read_text())
    assert d["same_detections"] is True and d["detections"] >= 3  # the two modes agree on the golden clip
    assert d["macs_per_inference"]["stream"] < d["macs_per_inference"]["whole"]


def test_soak_one_minute(clip: Path, tmp_path: Path) -> None:
    _bench("soak.py", "--bundle", INT8, "--wav", clip, "--minutes", "1", "--out", tmp_path / "soak.json")
    d = json.loads((tmp_path / "soak.json").read_text())
    assert d["cpu_ms_per_audio_s"] > 0 and "rss_growth_mb_minute5_to_end" in d


def test_long_wav_rss(tmp_path: Path) -> None:
    _bench("long_wav_rss.py", "--minutes", "0.2", "--bundle", INT8, "--json", tmp_path / "rss.json")
    assert json.loads((tmp_path / "rss.json").read_text())


def test_realdev_on_a_speech_commands_layout(tiny_data: Path, tmp_path: Path) -> None:
    """The real-speech yardstick reads any Speech Commands layout (here the tiny synthesized set stands in)."""
    (tmp_path / "realdev").mkdir()
    (tmp_path / "realdev" / "gsc_v2_test_dev").symlink_to(tiny_data, target_is_directory=True)
    _bench("realdev.py", "--realdev", tmp_path / "realdev", "--no-models", "--bundle", INT8, "--json", tmp_path / "r.json")
    r = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert r["name"] == INT8.name and 0.0 <= r["accuracy"] <= 1.0 and r["n"] > 0


def test_summarize_renders_the_committed_bench_readme(tmp_path: Path) -> None:
    """bench/README.md is what bench/summarize.py makes of the committed result files (regenerate it when they change)."""
    _bench("summarize.py", "--out", tmp_path / "README.md")
    assert (tmp_path / "README.md").read_text() == (REPO / "bench" / "README.md").read_text()
