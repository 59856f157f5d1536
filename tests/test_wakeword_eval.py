"""FRR / FA-per-hour counting on hand-built detection timelines, annotation errors, and `edgekd eval-stream` end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.core.errors import DataError
from edgekd.eval.wakeword import Annotation, count_false_accepts, count_hits, detections, pick_threshold, read_annotations, sweep


def test_debounce_keeps_the_first_of_two_detections_within_a_second() -> None:
    t = np.array([1000, 1080, 1900, 2000, 2080, 5000], dtype=float)
    s = np.array([0.9, 0.9, 0.9, 0.9, 0.1, 0.6])
    assert detections(t, s, 0.5).tolist() == [1000.0, 2000.0, 5000.0]  # 1080 and 1900 fall in 1000's debounce; 2000 is 1 s later
    assert detections(t, s, 0.7).tolist() == [1000.0, 2000.0]
    assert detections(t, s, 0.95).tolist() == []


def test_detection_right_at_offset_plus_one_second_counts_and_just_after_does_not() -> None:
    ann = [Annotation("a.wav", 1.0, 2.0, "w")]
    assert count_hits({"a.wav": np.array([3000.0])}, ann) == 1  # offset 2 s + 1 s, inclusive
    assert count_hits({"a.wav": np.array([3000.5])}, ann) == 0
    assert count_hits({"a.wav": np.array([1000.0])}, ann) == 1  # at onset, inclusive
    assert count_hits({"a.wav": np.array([999.0])}, ann) == 0
    assert count_hits({"b.wav": np.array([1500.0])}, ann) == 0  # a detection in another file does not count


def test_a_detection_spanning_two_negative_files_counts_once() -> None:
    # negatives are streamed back to back: file A ends at 60 s, file B starts there; the scores stay high across it
    t = np.arange(59000, 61001, 80, dtype=float)
    s = np.full(t.shape, 0.9)
    assert count_false_accepts(t, s, 0.5) == 2  # 59000 and 60040: 1 s debounce, one event per second of score over threshold
    t2 = np.array([59920.0, 60000.0, 60080.0])  # one burst across the boundary
    assert count_false_accepts(t2, np.full(3, 0.9), 0.5) == 1


def test_sweep_and_threshold_choice() -> None:
    ann = [Annotation("p1.wav", 1.0, 1.5, "w"), Annotation("p2.wav", 1.0, 1.5, "w")]
    pos = {"p1.wav": (np.array([1200.0, 1280.0]), np.array([0.95, 0.4])), "p2.wav": (np.array([2000.0]), np.array([0.6]))}
    neg = (np.array([10_000.0, 400_000.0, 800_000.0]), np.array([0.7, 0.55, 0.3]))
    rows = sweep(pos, ann, neg, 3600.0, [0.5, 0.65, 0.9])
    assert [(r["frr"], r["false_accepts"], r["fa_per_hour"]) for r in rows] == [(0.0, 2, 2.0), (0.5, 1, 1.0), (0.5, 0, 0.0)]
    assert pick_threshold(rows, 0.5)["threshold"] == 0.9
    assert pick_threshold(rows, 2.0)["threshold"] == 0.5
    assert pick_threshold([r for r in rows if r["fa_per_hour"] > 0], 0.5) is None


@pytest.mark.parametrize(("text", "message"), [
    ("filename\tonset\toffset\tevent_label\na.wav\t2.0\t1.0\tw\n", ":2: onset 2.0 and offset 1.0"),
    ("filename\tonset\toffset\tevent_label\na.wav\tx\t1.0\tw\n", ":2: onset and offset must be numbers"),
    ("filename\tonset\toffset\tevent_label\na.wav\t1.0\n", ":2: expected 4 tab-separated columns"),
    ("file\tstart\tend\tlabel\n", ":1: the header must be"),
    ("filename\tonset\toffset\tevent_label\na.wav\t1.0\t2.0\tother\n", ":2: unknown label 'other'"),
])
def test_bad_annotation_rows_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "a.tsv"
    p.write_text(text)
    with pytest.raises(DataError, match=message) as e:
        read_annotations(p, labels=["w"])
    assert str(p) in str(e.value)


def _wav(path: Path, seconds: float, seed: int = 0) -> Path:
    from edgekd.runtime.wav import write_wav

    write_wav(path, (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 0.01).astype(np.float32), 16000)
    return path


def _eval(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgekd", "eval-stream", *map(str, args)], capture_output=True, text=True)


def test_eval_stream_bad_inputs_are_one_line(shipped_bundle: Path, tmp_path: Path) -> None:
    pos = tmp_path / "pos"
    pos.mkdir()
    _wav(pos / "p1.wav", 2.0)
    neg = _wav(tmp_path / "neg.wav", 3.0, seed=1)
    tsv = tmp_path / "pos.tsv"
    common = ["--positives", pos, "--negatives", neg, "--label", "yes", "--json", tmp_path / "r.json"]

    p = _eval(shipped_bundle, "--annotations", tmp_path / "missing.tsv", *common)
    assert p.returncode == 2 and "annotation file not found" in p.stderr and "Traceback" not in p.stderr

    tsv.write_text("filename\tonset\toffset\tevent_label\nother.wav\t0.5\t1.0\tyes\n")
    _wav(pos / "p2.wav", 2.0)
    p = _eval(shipped_bundle, "--annotations", tsv, *common)
    assert p.returncode == 2 and "p1.wav: positive file has no row" in p.stderr

    tsv.write_text("filename\tonset\toffset\tevent_label\np1.wav\t0.5\t1.0\tyes\np2.wav\t0.5\t1.0\tyes\n")
    p = _eval(shipped_bundle, "--annotations", tsv, *common)
    assert "FA/h from less than a minute is meaningless" in p.stderr
    assert (tmp_path / "r.json").is_file() and "Traceback" not in p.stderr

    p = _eval(shipped_bundle, "--annotations", tsv, *common[:-4], "--json", tmp_path / "r.json")
    assert p.returncode == 2 and "--label" in p.stderr  # 10 keywords: which one?


def test_eval_stream_counts_real_detections(shipped_bundle: Path, tmp_path: Path) -> None:
    """The shipped bundle on its own golden stream: every keyword there is found, nothing fires on quiet noise."""
    import json

    from edgekd.runtime.wav import load_audio, write_wav

    gold = json.loads((shipped_bundle / "golden" / "detections.json").read_text())
    label = gold[0]["label"]
    audio = load_audio(shipped_bundle / "golden" / "clip.wav", 16000)
    pos = tmp_path / "pos"
    pos.mkdir()
    write_wav(pos / "g.wav", audio, 16000)
    rows = [d for d in gold if d["label"] == label]
    tsv = tmp_path / "pos.tsv"
    # the phrase ends at most 0.6 s before its detection time: annotate [t - 0.9 s, t - 0.3 s]
    lines = [f"g.wav\t{d['t_ms'] / 1000 - 0.9:.3f}\t{d['t_ms'] / 1000 - 0.3:.3f}\t{label}\n" for d in rows]
    tsv.write_text("filename\tonset\toffset\tevent_label\n" + "".join(lines))
    neg = _wav(tmp_path / "neg.wav", 61.0, seed=3)
    p = _eval(shipped_bundle, "--positives", pos, "--annotations", tsv, "--negatives", neg, "--label", label, "--json", tmp_path / "r.json",
              "--det", tmp_path / "det.png", "--target-fa-per-hour", "60")
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    at_runtime_thr = next(r for r in res["sweep"] if abs(r["threshold"] - 0.55) < 1e-9)
    assert at_runtime_thr["hits"] == len(rows) and at_runtime_thr["false_accepts"] == 0
    assert (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG"
    assert res["negative_seconds"] == pytest.approx(61.0)


def test_write_threshold_stores_it_and_the_bundle_still_selftests(shipped_bundle: Path, tmp_path: Path) -> None:
    import json
    import shutil

    bundle = Path(shutil.copytree(shipped_bundle, tmp_path / "b"))
    pos = tmp_path / "pos"
    pos.mkdir()
    _wav(pos / "p.wav", 2.0)
    tsv = tmp_path / "pos.tsv"
    tsv.write_text("filename\tonset\toffset\tevent_label\np.wav\t0.5\t1.0\tyes\n")
    neg = _wav(tmp_path / "neg.wav", 5.0, seed=2)
    p = _eval(bundle, "--positives", pos, "--annotations", tsv, "--negatives", neg, "--label", "yes", "--json", tmp_path / "r.json",
              "--target-fa-per-hour", "1000", "--write-threshold")
    assert p.returncode == 0, p.stderr
    chosen = json.loads((tmp_path / "r.json").read_text())["chosen"]["threshold"]
    man = json.loads((bundle / "manifest.json").read_text())
    assert man["postprocess"]["thresholds"]["yes"] == chosen
    st = subprocess.run([sys.executable, "-m", "edgekd", "selftest", str(bundle)], capture_output=True, text=True)
    assert st.returncode == 0, st.stdout + st.stderr


def test_the_lowest_gate_within_a_budget_holds_for_every_gate_above_it() -> None:
    """Calls per hour need not fall as the gate rises: a score alternating 0.5 / 0.7 keeps a gate at or under 0.5 open
    throughout (one opening: three calls with a cap of three), while a gate in (0.5, 0.7] opens 1,800 times. The
    chosen gate is the lowest whose calls and those of every gate above it stay within the budget."""
    from edgekd.eval.wakeword import lowest_gate, verifier_calls_per_hour

    scores, seconds = np.tile([0.5, 0.7], 1800), 3600.0
    assert verifier_calls_per_hour(scores, seconds, 0.3, 2, 3) == 3.0 and verifier_calls_per_hour(scores, seconds, 0.6, 2, 3) == 1800.0
    assert lowest_gate(scores, seconds, 100.0, 2, 3) == 0.71 and lowest_gate(scores, seconds, 2000.0, 2, 3) == 0.01
    # a hold of one inference bridges the gaps: one opening again at 0.6, and none at all over 0.7
    assert verifier_calls_per_hour(scores, seconds, 0.6, 2, 3, hold=1) == 3.0 and lowest_gate(scores, seconds, 100.0, 2, 3, 1) == 0.01
    assert lowest_gate(np.full(100, 0.995), 3600.0, 0.5, 1) is None  # open at every gate of the grid: over any budget


def test_the_recall_gate_is_the_highest_that_the_share_of_positives_reach() -> None:
    """Peaks 0.05, 0.10, ..., 1.00 (20 positives): 0.95 of them reach 0.10 and not 0.11; all of them 0.05; a share of 0
    puts no bound (the grid's top) and no positive at all puts none either; a share no gate reaches gives the grid's
    lowest."""
    from edgekd.eval.wakeword import THRESHOLDS, recall_gate

    peaks = np.arange(1, 21) * 0.05
    assert recall_gate(peaks, 0.95) == 0.1 and recall_gate(peaks, 1.0) == 0.05 and recall_gate(peaks, 0.5) == 0.55
    assert recall_gate(peaks, 0.0) == THRESHOLDS[-1] and recall_gate(np.zeros(0), 0.98) == THRESHOLDS[-1]
    assert recall_gate(np.full(10, 0.001), 0.5) == THRESHOLDS[0]
