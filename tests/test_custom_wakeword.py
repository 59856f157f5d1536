"""`edgekd train wakeword --phrase`: a wake word (or a command set) from text, end to end on tiny material, the
false-accept mining stage, and the one-line refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch", reason="train extra")
pytest.importorskip("openwakeword", reason="oww extra: the speech-embedding backbone files")

REPO = Path(__file__).resolve().parents[1]
TINY = ["--per-word", "4", "--positives", "3", "--transfer-minutes", "0.2", "--validation-minutes", "0.3", "--test-minutes", "0.3",
        "--mining-minutes", "0.3", "--epochs", "1", "--teacher-epochs", "1", "--qat-epochs", "1", "--views", "1", "--no-rooms",
        "--engines", "espeak", "--target-fa-per-hour", "1000", "--threads", "1"]


def _edgekd(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EDGEKD_CACHE_DIR=os.environ.get("EDGEKD_CACHE_DIR", str(REPO / ".edgekd-cache")))
    p = subprocess.run([sys.executable, "-m", "edgekd", *map(str, args)], capture_output=True, text=True, timeout=900, env=env)
    if ok:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


@pytest.mark.slow
def test_a_phrase_from_text_gives_a_streaming_bundle_and_a_rerun_reuses_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "computer"
    first = _edgekd("train", "wakeword", "--phrase", "computer", "--out", out, *TINY)
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == ["computer", "_unknown_", "_silence_"]
    row = report["per_label"]["computer"]
    assert 0.0 < row["threshold"] < 1.0 and row["negative_seconds"] == pytest.approx(18.0, abs=1.0)
    assert set(row) >= {"frr_at_0.5_fa_per_hour", "frr_at_2_fa_per_hour", "test_at_threshold"}
    # 18 s of validation speech: one false accept is 200 FA/h, under the 1000 FA/h target, so no warning
    assert row["validation_fa_per_hour_step"] == pytest.approx(200.0, rel=0.06) and "warning: one false accept" not in first.stderr
    material = json.loads((out / "data" / "material.json").read_text())
    assert material["confusables"] and "computer" not in material["confusables"]
    assert (out / "data" / "clips" / "_mined_").is_dir() and (out / "det.png").is_file()
    speech = sorted((out / "data" / "clips" / "_speech_").glob("*.wav"))  # running-speech windows, _unknown_ clips
    assert len(speech) == 4
    bundle = out / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["name"] == "computer-dscnn-stream-64-kd-int8" and manifest["quantization"] == "int8-qat" and manifest["streaming"]
    assert manifest["postprocess"]["thresholds"]["computer"] == row["threshold"]
    gate = report["verifier"]["gates"]["computer"]  # the teacher is the bundle's second stage, behind a gate chosen on validation
    assert manifest["verifier"] == {"dir": "verifier", "gates": {"computer": gate["gate"]}, "every": 2, "max_calls": 3, "hold": 2,
                                    "peak_power": 0.25, "lookback_ms": 320}  # an opening's first call also hears the second before
    assert 0.0 < gate["gate"] < 1.0
    assert gate["validation_calls_per_hour"] <= 1000 or gate["gate"] == 0.99
    assert report["verifier"]["head"] == str(out / "verifier.pt") and report["verifier"]["epochs"] == 2  # its own 2-epoch head
    from edgekd.train.checkpoint import Checkpoint

    head = Checkpoint.load(out / "verifier.pt")
    assert head.config["epochs"] == 2 and head.config["folds"] == 0 and head.provenance["role"] == "verifier"
    assert head.config["heads"] == report["verifier"]["heads"] == 3  # the default: three heads' mean logit
    windows = head.provenance["gate_open_windows"]  # it also learnt the mining speech's windows at which the gate asks it
    assert gate["window_gate"] <= gate["gate"]  # cut at the gate of the default budget, or the bundle's own where lower
    assert windows == {"source": "mining.wav", "gates": {"computer": gate["window_gate"]}, "every": 2, "repeat": 3, "hold": 2,
                       "lookback_ms": 320, "windows": report["verifier"]["gate_open_windows"]}
    from edgekd.recipes.custom_wakeword import gate_open_windows
    from edgekd.runtime.wav import load_audio

    mining = load_audio(out / "data" / "mining.wav", 16000)
    assert windows["windows"] == len(gate_open_windows(bundle, mining, {"computer": gate["window_gate"]}, 2, lookback_ms=320))
    assert report["verifier"]["lookback_ms"] == 320 and "ended 320 ms before it" in (bundle / "MODEL_CARD.md").read_text()
    assert all(f"verifier/{f}" in manifest["files"] for f in ("head.onnx", "melspectrogram.onnx", "embedding_model.onnx", "verifier.json"))
    card = (bundle / "MODEL_CARD.md").read_text()
    assert card.startswith("# computer-dscnn-stream-64-kd-int8: wake word(s)") and "second stage" in card
    assert "(3 heads of consecutive seeds, their mean logit)" in card
    assert "Apache-2.0" in card and "no openWakeWord wake-word head" in card
    assert "Settings other than the defaults" in card and "per_word 4" in card and "epochs 1" in card
    assert "QAT int8 (1 epoch of fine-tuning)" in card  # --qat-epochs 1: fine-tuned on the clips and the transfer windows
    qat = Checkpoint.load(out / "student-qat.pt")
    assert qat.metrics["qat_train_steps"] > 0 and qat.provenance["transfer"]["windows"] > 0
    assert "PASS golden stream" in _edgekd("selftest", bundle).stdout
    positive = sorted((out / "data" / "eval" / "test" / "computer").glob("*.wav"))[0]
    assert _edgekd("run", bundle, "--wav", positive).returncode == 0  # it streams a WAV through the runtime
    # evaluation speech plants the confusables people say, not the one-letter edits; every confusable's fire rate is reported
    ev = json.loads((out / "data" / "eval" / "eval.json").read_text())
    assert ev["speech_confusables"] and set(ev["speech_confusables"]) < set(ev["checked_confusables"]) == set(material["confusables"])
    assert "computer" not in ev["checked_confusables"]
    fired = row["confusables_fired"]
    assert set(fired) == set(material["confusables"]) and all(0.0 <= v <= 1.0 for v in fired.values())
    assert all(len(list((out / "data" / "eval" / "test" / "confusables" / t.replace(" ", "_")).glob("*.wav"))) == 3 for t in fired)
    # an eval/ made by other rules is made again; every trained stage is reused
    (out / "data" / "eval" / "eval.json").write_text(json.dumps({**ev, "rules": 0}))
    again = _edgekd("train", "wakeword", "--phrase", "computer", "--out", out, *TINY)
    assert again.stderr.count("reusing") >= 3 and "train dscnn-stream" not in again.stderr
    assert f"reusing {out / 'verifier.pt'}" in again.stderr and "training it again" not in again.stderr
    assert "made by other evaluation rules" in again.stderr
    # a changed training setting never runs on the old stages: one line before any work, nothing rewritten
    stamp = (out / "report.json").stat().st_mtime_ns
    changed = ["2" if i and TINY[i - 1] == "--teacher-epochs" else a for i, a in enumerate(TINY)]
    refused = _edgekd("train", "wakeword", "--phrase", "computer", "--out", out, *changed, ok=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr and (out / "report.json").stat().st_mtime_ns == stamp
    assert refused.stderr.strip().splitlines()[-1] == (f"error: {out / 'teacher.pt'} was made with epochs 1 (this run asks 2): give a new --out, "
                                                       "or --teacher-epochs 1 reuses it (a stage is reused when its file exists)")
    fewer_qat = ["0" if i and TINY[i - 1] == "--qat-epochs" else a for i, a in enumerate(TINY)]  # the int8 stage is checked too
    refused = _edgekd("train", "wakeword", "--phrase", "computer", "--out", out, *fewer_qat, ok=False)
    assert f"{out / 'student-qat.pt'} was made with epochs 1 (this run asks 0)" in refused.stderr.strip().splitlines()[-1]
    refused = _edgekd("train", "wakeword", "--phrase", "computer", "--out", out, *TINY, "--train-seed", "3", ok=False)  # another draw
    assert f"{out / 'teacher.pt'} was made with seed 0 (this run asks 3)" in refused.stderr.strip().splitlines()[-1]
    refused = _edgekd("train", "wakeword", "--phrase", "computer", "--out", out, *TINY, "--verifier-heads", "1", ok=False)
    assert refused.stderr.strip().splitlines()[-1].endswith(f"{out / 'verifier.pt'} was made with heads 3 (this run asks 1): give a new --out, "
                                                            "or --verifier-heads 3 reuses it, or delete it to train the verifier head again "
                                                            "on this run's other stages (a stage is reused when its file exists)")
    assert (out / "report.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "data" / "eval" / "eval.json").read_text()) == ev
    # the seed bench trains the shipped student again with another seed (the recipe's own seed reuses its student)
    seeds = tmp_path / "seeds.json"

    def seed_bench(*args: str) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([sys.executable, str(REPO / "bench" / "realdev_wakeword_seeds.py"), str(out), *args, "--realdev",
                            str(tmp_path / "nowhere"), "--json", str(seeds)], capture_output=True, text=True, timeout=900,
                           env=dict(os.environ, EDGEKD_CACHE_DIR=os.environ.get("EDGEKD_CACHE_DIR", str(REPO / ".edgekd-cache"))))
        assert p.returncode == 0, p.stderr[-3000:]
        return p

    p = seed_bench("--seeds", "0", "1")
    assert "absent" in p.stdout and "seed 1: synthesized_test" in p.stdout
    rows = json.loads(seeds.read_text())["rows"]
    final = out / ("student-mined.pt" if (out / "student-mined.pt").is_file() else "student.pt")
    assert [r["seed"] for r in rows] == [0, 1] and rows[0]["checkpoint"] == str(final)
    assert rows[1]["checkpoint"] != rows[0]["checkpoint"] and all((Path(r["bundle"]) / "manifest.json").is_file() for r in rows)
    assert all(set(r["synthesized_test"]) >= {"frr_at_0.5_fa_per_hour", "frr_at_2_fa_per_hour"} and "real" not in r for r in rows)
    # another soft-target weight: the recipe's own seed is trained again (not reused), under its own name
    seed_bench("--seeds", "0", "--alpha", "0.9")
    again = json.loads(seeds.read_text())
    assert again["alpha"] == 0.9 and again["rows"][0]["checkpoint"] == str(out / "seeds" / "seed0-fkd0-a0.9.pt")
    from edgekd.train.checkpoint import Checkpoint

    assert Checkpoint.load(again["rows"][0]["checkpoint"]).config["alpha"] == 0.9
    # another student: trained again under its own name, with that architecture
    seed_bench("--seeds", "0", "--arch", "dscnn-stream-128")
    wide = json.loads(seeds.read_text())
    assert wide["arch"] == "dscnn-stream-128" and wide["rows"][0]["checkpoint"] == str(out / "seeds" / "seed0-fkd0-dscnn-stream-128.pt")
    assert Checkpoint.load(wide["rows"][0]["checkpoint"]).arch == "dscnn-stream-128"
    # frequency warping and the weight average: trained again under their own name, with those settings
    seed_bench("--seeds", "0", "--freq-warp", "0.1", "--eq-db", "3", "--ema", "0.9")
    warped = json.loads(seeds.read_text())
    assert (warped["freq_warp"], warped["eq_db"], warped["ema"]) == (0.1, 3.0, 0.9)
    assert warped["rows"][0]["checkpoint"] == str(out / "seeds" / "seed0-fkd0-warp0.1-eq3-ema0.9.pt")
    config = Checkpoint.load(warped["rows"][0]["checkpoint"]).config
    assert (config["freq_warp"], config["eq_db"], config["ema"]) == (0.1, 3.0, 0.9)
    # more views per clip: trained again under its own name, on more rows (same epochs, so more examples seen)
    seed_bench("--seeds", "0", "--views", "3")
    more = json.loads(seeds.read_text())
    assert more["views"] == 3 and more["rows"][0]["checkpoint"] == str(out / "seeds" / "seed0-fkd0-views3.pt")
    seen = [Checkpoint.load(c).metrics["train_examples_seen"] for c in (more["rows"][0]["checkpoint"], final)]
    assert seen[0] > seen[1]
    # pitch-shifted views and known negatives: trained again under their own name, with those settings
    seed_bench("--seeds", "0", "--pitch-shift", "3", "--clean-negatives", "1")
    shifted = json.loads(seeds.read_text())
    assert (shifted["pitch_shift"], shifted["clean_negatives"]) == (3.0, True)
    assert shifted["rows"][0]["checkpoint"] == str(out / "seeds" / "seed0-fkd0-clean1-pitch3.pt")
    assert Checkpoint.load(shifted["rows"][0]["checkpoint"]).config["clean_negatives"] is True
    # phrase windows added to the run's transfer set: the seed is distilled on the larger set, under its own name
    seed_bench("--seeds", "0", "--phrase-windows", "3")
    plus = json.loads(seeds.read_text())
    assert plus["transfer"] == str(out / "data" / "transfer-phrase3")
    assert plus["rows"][0]["checkpoint"] == str(out / "seeds" / "seed0-fkd0-transfer-phrase3.pt")
    assert json.loads((out / "data" / "transfer-phrase3" / "transfer_meta.json").read_text())["phrases"] == {"computer": 3}
    base = json.loads((out / "data" / "transfer" / "transfer_meta.json").read_text())["windows"]
    assert Checkpoint.load(plus["rows"][0]["checkpoint"]).provenance["transfer"]["windows"] == base + 3
    _misses_bench(out, tmp_path)
    _engines_bench(out, tmp_path)
    _int8_draws_bench(out, tmp_path)
    _teacher_heads_bench(out, tmp_path)
    _cascade_bench(out, tmp_path)
    _verifier_seeds_bench(out, tmp_path)
    _draws_bench(out, tmp_path)
    _rules_bench(out, tmp_path)
    _window_gates(out)
    _verifier_again(out)


def _verifier_again(run: Path) -> None:
    """What the refusal of a changed verifier setting offers: without ``verifier.pt`` only the verifier head is trained
    again (every earlier stage reused), and the bundle, report and card follow it."""
    from edgekd.train.checkpoint import Checkpoint

    students = {p: p.stat().st_mtime_ns for p in run.glob("student*.pt")} | {run / "teacher.pt": (run / "teacher.pt").stat().st_mtime_ns}
    (run / "verifier.pt").unlink()
    again = _edgekd("train", "wakeword", "--phrase", "computer", "--out", run, *TINY, "--verifier-heads", "1")
    assert "train dscnn-stream" not in again.stderr and f"reusing {run / 'teacher.pt'}" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in students} == students
    report = json.loads((run / "report.json").read_text())
    assert Checkpoint.load(run / "verifier.pt").config["heads"] == report["verifier"]["heads"] == 1
    assert "verifier_heads 1" in (run / "bundle" / "MODEL_CARD.md").read_text()


def _cascade_bench(run: Path, tmp_path: Path) -> None:
    """bench/realdev_cascade.py on the tiny run with the stand-in realdev of ``_teacher_heads_bench`` (its backbone
    frames reused): each stage alone and the cascade per gate on both yardsticks; a higher gate never opens the
    verifier more often; a gate outside (0, 1) or a folder that is not a run is one line and writes nothing."""
    out, work, real = tmp_path / "casc.json", tmp_path / "th-work", tmp_path / "th" / "realdev"

    def bench(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(REPO / "bench" / "realdev_cascade.py"), *map(str, args)], capture_output=True,
                              text=True, timeout=900)

    p = bench(run, "--gates", "0.01", "0.3", "0.9", "--realdev", real, "--work", work, "--json", out)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    for key in ("real_negatives_only", "real_and_synthesized_negatives"):
        rows = res[key]["rows"]
        assert [r["system"] for r in rows[:5]] == ["student", "teacher", "cascade gate 0.01", "cascade gate 0.3", "cascade gate 0.9"]
        assert [r["gate"] for r in rows[5:]] == [g["gate"] for g in res["validation_gates"]]  # the gates a recipe could pick, scored too
        calls = [r["verifier_calls_per_hour"] for r in rows[2:5]]
        assert calls == sorted(calls, reverse=True) and all(r["gate_openings_per_hour"] <= r["verifier_calls_per_hour"] for r in rows[2:])
        assert all(set(r) >= {"frr_at_2_fa_per_hour"} for r in rows) and res[key]["positives"] == 2
    assert res["verifier_cpu_ms_per_call"] > 0 and res["label"] == "computer"
    picks = res["validation_gates"]
    gates = [g["gate"] for g in picks[:4]]  # keep 99, 98, 95, 90% of the validation positives: the gate only rises
    assert [g["rule"] for g in picks[:4]] == ["val99%", "val98%", "val95%", "val90%"] and gates == sorted(gates)
    for g in picks[4:]:  # the lowest gate within a budget of verifier calls per hour of validation speech
        assert g["rule"].startswith("budget") and g["validation_calls_per_hour"] <= float(g["rule"][6:-2])
    for args, message in (((run, "--gates", "1.5"), "--gates must lie in (0, 1)"), ((tmp_path,), "is missing")):
        bad = bench(*args, "--realdev", real, "--work", work, "--json", tmp_path / "y.json")
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr and not (tmp_path / "y.json").exists()


def _teacher_heads_bench(run: Path, tmp_path: Path) -> None:
    """bench/teacher_heads.py on the tiny run with a stand-in realdev layout: a head per epochs and seed, trained on the
    teacher material without the mined windows, scored like the yardstick's teacher rows; a second call reuses every
    head and the backbone frames; a folder that is not a run is one line."""
    sys.path.insert(0, str(REPO / "bench"))
    from realdev_wakeword import evaluate_teacher, real_negatives

    from edgekd.runtime.wav import load_audio
    from edgekd.train.checkpoint import Checkpoint
    from tests.realdev_layout import fake_realdev

    test = run / "data" / "eval" / "test"
    real = fake_realdev(tmp_path / "th", "computer", [load_audio(w, 16000) for w in sorted((test / "computer").glob("*.wav"))[:2]],
                        load_audio(test / "negatives.wav", 16000))
    out, work = tmp_path / "th.json", tmp_path / "th-work"

    def bench(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(REPO / "bench" / "teacher_heads.py"), *map(str, args)], capture_output=True, text=True,
                              timeout=900)

    p = bench(run, "--epochs", "1", "2", "--seeds", "0", "1", "--realdev", real, "--work", work, "--json", out)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert [(h["epochs"], h["seed"]) for h in res["heads"]] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert set(res["summary"]) == {"1", "2"} and set(res["summary"]["1"]) == {"real_negatives_only", "real_and_synthesized_negatives"}
    head = Path(res["heads"][0]["teacher"])
    ck = Checkpoint.load(head)
    assert ck.config["epochs"] == 1 and ck.config["folds"] == 0
    mined = len(list((run / "data" / "clips" / "_mined_").glob("*.wav")))  # views 1: one row per clip
    assert res["mined_rows_dropped"] == mined and ck.metrics["train_steps"] > 0
    frames = sorted((work / "teacher_frames").glob("*.npy"))
    assert len(frames) == 2 + 2  # two positives, the real negatives, the synthesized test speech
    dev = real / "wakeword_dev"
    again = evaluate_teacher(head, "computer", dev / "computer", dev / "computer.tsv", real_negatives(real, work / "real_negatives.wav"),
                             [test / "negatives.wav"])  # no frames cache: the backbone again, the same sweep
    assert {k: v for k, v in again["real_negatives_only"].items() if k.startswith("frr_at")} == res["heads"][0]["real_negatives_only"]
    mtimes = [f.stat().st_mtime_ns for f in frames]
    p = bench(run, "--epochs", "1", "--seeds", "0", "--realdev", real, "--work", work, "--json", out)
    assert p.returncode == 0 and [f.stat().st_mtime_ns for f in sorted((work / "teacher_frames").glob("*.npy"))] == mtimes
    assert head.stat().st_mtime_ns == Path(json.loads(out.read_text())["heads"][0]["teacher"]).stat().st_mtime_ns
    bad = bench(tmp_path, "--realdev", real, "--json", tmp_path / "x.json")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no report.json" in bad.stderr and not (tmp_path / "x.json").exists()


def _stand_in_realdev(run: Path, where: Path) -> Path:
    """A realdev layout for the tiny run: two of its test positives as the dev speakers, its test speech as real speech."""
    from edgekd.runtime.wav import load_audio
    from tests.realdev_layout import fake_realdev

    test = run / "data" / "eval" / "test"
    return fake_realdev(where, "computer", [load_audio(w, 16000) for w in sorted((test / "computer").glob("*.wav"))[:2]],
                        load_audio(test / "negatives.wav", 16000))


def _bench(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python bench/<name>.py ARGS`` with the voice cache of the test session."""
    return subprocess.run([sys.executable, str(REPO / "bench" / f"{name}.py"), *map(str, args)], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, EDGEKD_CACHE_DIR=os.environ.get("EDGEKD_CACHE_DIR", str(REPO / ".edgekd-cache"))))


def _verifier_seeds_bench(run: Path, tmp_path: Path) -> None:
    """bench/verifier_seeds.py on the tiny run with a stand-in realdev layout: seed 0 is the recipe's own draw, seed 1
    another head, each in a copy of the run's bundle (same student, gates and every); the run's bundle is untouched;
    without real voices nothing is trained."""
    from edgekd.runtime.manifest import ModelManifest

    real = _stand_in_realdev(run, tmp_path / "vs")
    out = tmp_path / "vs.json"

    def bench(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return _bench("verifier_seeds", *args)

    before = (run / "bundle" / "manifest.json").read_bytes()
    p = bench(run, "--seeds", "0", "1", "--realdev", real, "--work", tmp_path / "vs-work", "--json", out)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert [row["seed"] for row in res["rows"]] == [0, 1] and set(res["summary"]) == {"real", "real_and_synthesized"}
    assert all(set(row) >= {"real", "real_and_synthesized"} for row in res["rows"])
    own, copies = ModelManifest.load(run / "bundle"), [ModelManifest.load(Path(row["bundle"])) for row in res["rows"]]
    for m in copies:
        assert m.verifier == own.verifier and m.files["model_stream.onnx"] == own.files["model_stream.onnx"]
    from edgekd.train.checkpoint import Checkpoint

    seeds = [Checkpoint.load(run / "verifier-seeds" / f"seed{k}" / "verifier.pt").config["seed"] for k in (0, 1)]
    assert seeds == [Checkpoint.load(run / "verifier.pt").config["seed"] + k for k in (0, 1)]  # seed 0: the recipe's own draw
    assert copies[1].files["verifier/head.onnx"] != copies[0].files["verifier/head.onnx"]
    # --heads 2: the ensemble of the two heads above, one verifier (its head.onnx answers with their mean logit)
    p = bench(run, "--seeds", "0", "--heads", "2", "--realdev", real, "--work", tmp_path / "vs-work", "--json", out)
    assert p.returncode == 0, p.stderr[-3000:]
    ens = json.loads(out.read_text())["rows"][0]
    assert ens["heads"] == 2 and ens["bundle"] == str(run / "verifier-seeds" / "heads2-seed0" / "bundle")
    ck = Checkpoint.load(run / "verifier-seeds" / "heads2-seed0" / "verifier.pt")
    assert (ck.config["heads"], ck.config["seed"]) == (2, seeds[0])
    assert ModelManifest.load(Path(ens["bundle"])).files["verifier/head.onnx"] not in {m.files["verifier/head.onnx"] for m in copies}
    # what the ensemble's verifier call costs beside one head's (interleaved in one process), and a bundle without one
    cost = _bench("verifier_cost", run / "bundle", ens["bundle"], "--calls", "10", "--json", tmp_path / "cost.json")
    assert cost.returncode == 0, cost.stderr[-3000:]
    rows = json.loads((tmp_path / "cost.json").read_text())["rows"]
    assert [r["bundle"] for r in rows] == [str(run / "bundle"), ens["bundle"]] and rows[0]["ratio_to_first"] == 1.0
    assert all(r["median_cpu_ms"] > 0 for r in rows)
    plain = _bench("verifier_cost", run / "data", "--calls", "10", "--json", tmp_path / "cost2.json")
    assert plain.returncode == 2 and "not a bundle with a verifier" in plain.stderr and "Traceback" not in plain.stderr
    assert (run / "bundle" / "manifest.json").read_bytes() == before
    nowhere = bench(run, "--realdev", tmp_path / "nowhere", "--json", tmp_path / "vs2.json")
    assert nowhere.returncode == 0 and "absent" in nowhere.stdout and not (tmp_path / "vs2.json").exists()


def _draws_bench(run: Path, tmp_path: Path) -> None:
    """bench/wakeword_draws.py on the tiny run: a draw trains the whole recipe again with another training seed on
    hard links of the run's material, without the run's mined windows (it mines its own), and both bundles are
    measured; a second call reuses the draw; the run's own seed or a folder that is not a run is one line."""
    from edgekd.recipes.custom_wakeword import training_seed
    from edgekd.train.checkpoint import Checkpoint

    real = _stand_in_realdev(run, tmp_path / "dr")
    out = tmp_path / "draws.json"

    def bench(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return _bench("wakeword_draws", *args)

    import shutil

    planted = run / "data" / "clips" / "_mined_" / "planted.wav"  # a window the run's first student "fired on" (the tiny one fires on none)
    shutil.copy(sorted((run / "data" / "eval" / "test" / "computer").glob("*.wav"))[0], planted)
    before = (run / "bundle" / "manifest.json").read_bytes()
    p = bench(run, "--train-seeds", "3", "--realdev", real, "--work", tmp_path / "dr-work", "--json", out)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert [row["train_seed"] for row in res["rows"]] == [0, 3] and set(res["summary"]) == {"real", "real_and_synthesized"}
    assert all(set(row) >= {"real", "real_and_synthesized"} for row in res["rows"])
    d = run / "draws" / "seed3"
    report = json.loads((d / "report.json").read_text())
    assert report["recipe"]["train_seed"] == 3 and report["material"] == json.loads((run / "report.json").read_text())["material"]
    assert (d / "data" / "mining.wav").stat().st_ino == (run / "data" / "mining.wav").stat().st_ino  # the run's material, linked
    for name in ("teacher.pt", "student.pt", "verifier.pt"):
        assert Checkpoint.load(d / name).config["seed"] == 3 != Checkpoint.load(run / name).config["seed"]
    linked = {f.stat().st_ino for f in (d / "data" / "clips").rglob("*.wav")}
    assert planted.stat().st_ino not in linked and not list((d / "data" / "clips").rglob("planted.wav"))  # it mines on its own
    planted.unlink()
    assert training_seed(replace(_recipe_of(run), train_seed=3)) == 3 and training_seed(_recipe_of(run)) == 0
    assert (run / "bundle" / "manifest.json").read_bytes() == before
    stamp = (d / "bundle" / "manifest.json").stat().st_mtime_ns
    assert bench(run, "--train-seeds", "3", "--realdev", real, "--work", tmp_path / "dr-work", "--json", out).returncode == 0
    assert (d / "bundle" / "manifest.json").stat().st_mtime_ns == stamp
    for args, message in (((run, "--train-seeds", "0"), "own draw"), ((tmp_path, "--train-seeds", "1"), "no bundle")):
        bad = bench(*args, "--realdev", real, "--json", tmp_path / "z.json")
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr and not (tmp_path / "z.json").exists()


def _rules_bench(run: Path, tmp_path: Path) -> None:
    """bench/verifier_rules.py on the tiny run, its own rules and the budget's gate: a gate on the mean of the run's
    student and itself (``--students RUN``) scores every row as the run's student alone (the validation file streamed
    by each student); another draw's student is taken and recorded; a folder that is not a run is one line."""
    real, work = _stand_in_realdev(run, tmp_path / "vr"), tmp_path / "vr-work"

    def rows(*args: str | Path) -> list[dict[str, Any]]:
        out = tmp_path / "vr.json"
        p = _bench("verifier_rules", run, "--rules", "0.05:2:3:2", "--budget-gates", "1000", "--holds", "2", *args, "--realdev", real,
                   "--work", work, "--json", out)
        assert p.returncode == 0, p.stderr[-3000:]
        res = json.loads(out.read_text())
        assert res["students"][0] == str(run / "bundle") and res["students"][1:] == [str(Path(a) / "bundle") for a in args[1:]]
        return [{k: v for k, v in r.items() if k != "rule"} for r in res["rows"]]

    alone = rows()
    assert len(alone) == 2 and alone == rows("--students", run)
    other = rows("--students", run / "draws" / "seed3")
    assert len(other) == 2
    bad = _bench("verifier_rules", run, "--rules", "0.05:2:3:2", "--students", tmp_path, "--realdev", real, "--json", tmp_path / "w.json")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--students" in bad.stderr and not (tmp_path / "w.json").exists()


def _window_gates(run: Path) -> None:
    """The verifier's windows are cut at the gate of the default budget (VERIFIER_WINDOW_BUDGET), or at the bundle's own
    where that is lower: a smaller budget (a higher gate) keeps the default's windows, a larger one its own."""
    from edgekd.recipes.custom_wakeword import VERIFIER_WINDOW_BUDGET, choose_gates, window_gate

    r = _recipe_of(run)
    at = {b: choose_gates(run / "bundle", replace(r, verifier_budget=b), run / "data")["computer"] for b in (1.0, VERIFIER_WINDOW_BUDGET, 1e6)}
    default = at[VERIFIER_WINDOW_BUDGET]["gate"]
    assert at[1.0]["gate"] >= default >= at[1e6]["gate"]
    assert window_gate(at[1.0]) == min(at[1.0]["gate"], default) and window_gate(at[1e6]) == at[1e6]["gate"]
    assert window_gate(at[VERIFIER_WINDOW_BUDGET]) == default and window_gate({"gate": 0.4}) == 0.4  # a report before window gates
    # the gate never rises over the one gate_recall of the validation positives reach, each heard in gate_views field views:
    # with gate_recall 1, a budget of one call an hour gives a gate every field view reaches, over the budget; gate_recall 0
    # is the budget alone; gate_views 0 counts the clean positives
    assert at[1.0]["budget_gate"] >= at[1.0]["gate"] and at[1.0]["positives_reaching_budget_gate"] <= 1.0
    assert r.gate_views == 4 and at[1.0]["field_views"] == 4
    full = choose_gates(run / "bundle", replace(r, verifier_budget=1.0, gate_recall=1.0), run / "data")["computer"]
    alone = choose_gates(run / "bundle", replace(r, verifier_budget=1.0, gate_recall=0.0), run / "data")["computer"]
    clean = choose_gates(run / "bundle", replace(r, verifier_budget=1.0, gate_recall=1.0, gate_views=0), run / "data")["computer"]
    assert full["field_views_reaching"] == 1.0 and full["gate"] <= alone["gate"] == alone["budget_gate"] == full["budget_gate"]
    assert clean["validation_positives_reaching"] == 1.0 == clean["field_views_reaching"] and clean["gate"] <= alone["gate"]
    assert window_gate(full) <= full["gate"]
    _field_peaks(run, r)


def _field_peaks(run: Path, r: Any) -> None:
    """The field views' peaks: gate_views per validation positive, drawn from the material's seed (the same for every
    training draw), and the gate of recall 1 is the highest that the lowest of them reaches."""
    from edgekd.eval import wakeword as we
    from edgekd.recipes.custom_wakeword import choose_gates, field_peaks
    from edgekd.runtime.detector import load_kws

    ev = run / "data" / "eval" / "validation"
    scorer = we.bundle_scorer(load_kws(run / "bundle", backend="onnx", verifier=False), "computer")
    rows, wavs = we.annotated_positives(ev / "computer", ev / "computer.tsv", "computer")
    peaks = field_peaks(scorer, rows, wavs, replace(r, gate_views=3))
    assert peaks.shape == (3 * len(list((ev / "computer").glob("*.wav"))),) and np.all((peaks >= 0) & (peaks <= 1))
    np.testing.assert_array_equal(peaks, field_peaks(scorer, rows, wavs, replace(r, gate_views=3, train_seed=7)))
    assert not np.array_equal(peaks, field_peaks(scorer, rows, wavs, replace(r, gate_views=3, seed=1)))
    g = choose_gates(run / "bundle", replace(r, verifier_budget=1.0, gate_recall=1.0, gate_views=3), run / "data")["computer"]
    assert g["gate"] == min(g["budget_gate"], we.recall_gate(peaks, 1.0))


def _recipe_of(run: Path) -> Any:
    sys.path.insert(0, str(REPO / "bench"))
    from realdev_wakeword_seeds import _recipe

    return _recipe(run)


def _int8_draws_bench(run: Path, tmp_path: Path) -> None:
    """bench/int8_draws.py on the tiny run: the final student made int8 without fine-tuning streams like the recipe's
    bundle and keeps the float weights; without real voices it says so and scores nothing."""
    from edgekd.train.checkpoint import Checkpoint

    out = tmp_path / "draw.json"
    p = subprocess.run([sys.executable, str(REPO / "bench" / "int8_draws.py"), str(run), "--qat-epochs", "0", "--transfer", "--realdev",
                        str(tmp_path / "nowhere"), "--json", str(out)], capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, EDGEKD_CACHE_DIR=os.environ.get("EDGEKD_CACHE_DIR", str(REPO / ".edgekd-cache"))))
    assert p.returncode == 0, p.stderr[-3000:]
    row = json.loads(out.read_text())
    assert "absent" in p.stdout and "real" not in row and row["qat_epochs"] == 0 and row["transfer"] is True
    ck = Checkpoint.load(row["checkpoint"])
    assert ck.is_qat and ck.metrics["qat_train_steps"] == 0 and ck.provenance["transfer"]["windows"] > 0
    assert "PASS golden stream" in _edgekd("selftest", row["bundle"]).stdout
    p = subprocess.run([sys.executable, str(REPO / "bench" / "int8_draws.py"), str(run), "--qat-epochs", "-1"], capture_output=True, text=True)
    assert p.returncode != 0 and "--qat-epochs must be >= 0" in p.stderr


def _engines_bench(run: Path, tmp_path: Path) -> None:
    """bench/wakeword_engines.py on the tiny run: one row per test engine, its positives those the engine spoke
    (``i % n``), the bundle's median peak the runtime scorer's; a folder that is not a run is one line."""
    from edgekd.eval.wakeword import bundle_scorer
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.wav import load_audio

    out = tmp_path / "engines.json"

    def bench(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(REPO / "bench" / "wakeword_engines.py"), *map(str, args)], capture_output=True,
                              text=True, timeout=900)

    p = bench(run, "--threshold", "0.5", "--json", out)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    engines = json.loads((run / "data" / "eval" / "eval.json").read_text())["engines"]["test"]
    wavs = sorted((run / "data" / "eval" / "test" / "computer").glob("*.wav"))
    assert list(res["bundle"]) == list(res["teacher"]) == engines and sum(v["positives"] for v in res["bundle"].values()) == len(wavs)
    score = bundle_scorer(load_kws(run / "bundle", backend="onnx", threads=1), "computer")
    pad = np.zeros(16000, np.float32)
    first = [float(score(np.concatenate([load_audio(w, 16000), pad]))[1].max()) for w in wavs[:: len(engines)]]
    assert res["bundle"][engines[0]]["median_peak"] == pytest.approx(float(np.median(first)), abs=1e-6)
    assert res["bundle"][engines[0]]["detected"] == pytest.approx(float(np.mean(np.array(first) >= 0.5)))
    assert all(0.0 <= v["median_peak"] <= 1.0 for v in res["teacher"].values())
    p = bench(tmp_path)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "wakeword --phrase" in p.stderr


def _misses_bench(run: Path, tmp_path: Path) -> None:
    """bench/realdev_wakeword_misses.py on the tiny run, with a stand-in realdev layout (three of its test positives as
    the "real" utterances, its test negatives as the GSC and FSDD clips): every utterance's bundle peak is the runtime
    scorer's, the groups hold every utterance once; a folder that is not a run is one line."""
    from edgekd.eval.wakeword import bundle_scorer
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.wav import load_audio
    from tests.realdev_layout import fake_realdev

    positives = [load_audio(w, 16000) for w in sorted((run / "data" / "eval" / "test" / "computer").glob("*.wav"))[:3]]
    real = fake_realdev(tmp_path, "computer", positives, load_audio(run / "data" / "eval" / "test" / "negatives.wav", 16000))
    dev = real / "wakeword_dev" / "computer"
    out = tmp_path / "misses.json"

    def bench(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(REPO / "bench" / "realdev_wakeword_misses.py"), *map(str, args)],
                              capture_output=True, text=True, timeout=900)

    p = bench(run, "--realdev", real, "--fa-per-hour", "100000", "--work", tmp_path / "misses-work", "--json", out)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["summary"]["utterances"] == 3 and sum(g["bundle"]["utterances"] for g in res["by_active_length"].values()) == 3
    assert sum(g["bundle"]["utterances"] for g in res["by_pitch"].values()) == 3  # every utterance once (voiced or not)
    first = res["utterances"][0]
    x = load_audio(dev / first["file"], 16000)
    pad = np.zeros(16000, np.float32)
    peak = float(bundle_scorer(load_kws(run / "bundle", backend="onnx", threads=1), "computer")(np.concatenate([pad, x, pad]))[1].max())
    assert first["bundle"] == pytest.approx(peak, abs=1e-6) and 0.0 <= first["teacher_1s"] <= 1.0 and 0.0 <= first["teacher_1.5s"] <= 1.0
    assert 0.0 < first["active_s"] <= x.shape[0] / 16000
    assert first["pitch_hz"] is None or 70.0 <= first["pitch_hz"] <= 400.0
    assert "teacher_1.5s missed" in p.stdout and set(res["summary"]["missed"]) == {"bundle", "teacher_1s", "teacher_1.5s"}
    p = bench(tmp_path, "--realdev", real)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "finished" in p.stderr


@pytest.mark.slow
def test_a_two_phrase_command_set(tmp_path: Path) -> None:
    out = tmp_path / "lights"
    _edgekd("train", "wakeword", "--phrase", "lights on", "--phrase", "lights off", "--out", out, *TINY, "--feature-kd", "1",
            "--phrase-windows", "2", "--qat-epochs", "0", "--verifier-epochs", "1", "--verifier-heads", "1",
            "--mining-minutes", "0", "--students", "2")  # int8 without fine-tuning: the default
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == ["lights_on", "lights_off", "_unknown_", "_silence_"] and report["recipe"]["qat_epochs"] == 0
    assert report["recipe"]["feature_kd"] == 1.0
    transfer = json.loads((out / "data" / "transfer" / "transfer_meta.json").read_text())  # phrase windows of each phrase
    assert transfer["phrases"] == {"lights_on": 2, "lights_off": 2} and transfer["by_source"]["phrase"] == 4
    from edgekd.train.checkpoint import Checkpoint

    int8 = Checkpoint.load(out / "student-qat.pt")  # ranges observed over the clips and the transfer windows, weights kept
    assert int8.is_qat and int8.metrics["qat_train_steps"] == 0 and int8.provenance["transfer"]["windows"] > 0
    assert "int8 without fine-tuning" in (out / "bundle" / "MODEL_CARD.md").read_text()
    students = [out / s for s in ("student.pt", "student-mined.pt") if (out / s).is_file()]  # the second one if mining found windows
    assert students == [out / "student.pt"]  # no mining
    for student in students:  # each student regressed its features onto the teacher's embedding
        assert Checkpoint.load(student).provenance["feature_kd"]["weight"] == 1.0
    assert set(report["per_label"]) == {"lights_on", "lights_off"}
    block = json.loads((out / "bundle" / "manifest.json").read_text())["verifier"]
    gates = block["gates"]  # one gate per phrase
    assert block["peak_power"] == report["verifier"]["peak_power"] == 0.25  # the default weighs the opening's peak
    assert set(gates) == {"lights_on", "lights_off"} and gates == {k: v["gate"] for k, v in report["verifier"]["gates"].items()}
    # no mining speech (so no gate-open windows), as many epochs and one head: the teacher is the verifier
    assert report["verifier"]["head"] == str(out / "teacher.pt") and not (out / "verifier.pt").exists()
    assert report["verifier"]["gate_open_windows"] == 0
    confusables = json.loads((out / "data" / "material.json").read_text())["confusables"]
    assert "lights on" not in confusables and "lights off" not in confusables
    assert "PASS golden stream" in _edgekd("selftest", out / "bundle").stdout
    # two students: the second trained alike from the next seed, both int8, merged; the gate reads their mean posterior
    second = Checkpoint.load(out / "student-1.pt")
    assert second.config["seed"] == Checkpoint.load(out / "student.pt").config["seed"] + 1 == 1
    assert Checkpoint.load(out / "student-qat-1.pt").is_qat
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    members = [json.loads((out / "members" / f"m{k}" / "manifest.json").read_text()) for k in (0, 1)]
    assert manifest["name"] == "lights_on-lights_off-dscnn-stream-64-kd-int8" and manifest["verifier"]["gates"] == gates
    assert [e["bundle"] for e in manifest["provenance"]["ensemble"]] == [str(out / "members" / f"m{k}") for k in (0, 1)]
    assert len(manifest["streaming"]["states"]) == sum(len(m["streaming"]["states"]) for m in members)
    assert "- **Students**: 2 `dscnn-stream-64` (training seeds 0-1)" in (out / "bundle" / "MODEL_CARD.md").read_text()
    from edgekd.core.errors import ConfigError
    from edgekd.recipes.custom_wakeword import PhraseRecipe, check_recipe

    for bad in (0, 9):
        with pytest.raises(ConfigError, match="--students must be a whole number from 1 to 8"):
            check_recipe(PhraseRecipe(phrases=("computer",), students=bad))
    # a rerun reuses the second student like any stage
    again = _edgekd("train", "wakeword", "--phrase", "lights on", "--phrase", "lights off", "--out", out, *TINY, "--feature-kd", "1",
                    "--phrase-windows", "2", "--qat-epochs", "0", "--verifier-epochs", "1", "--verifier-heads", "1",
                    "--mining-minutes", "0", "--students", "2")
    assert f"reusing {out / 'student-1.pt'}" in again.stderr and "train dscnn-stream" not in again.stderr


@pytest.mark.parametrize("args, message", [
    (["--phrase", ""], "empty"),
    (["--phrase", "hey 2000"], "cannot phonemize"),
    (["--phrase", "computer", "--phrase", "Computer"], "given twice"),
    (["--phrase", "computer", "--teacher", "oww:alexa"], "only speech-embedding"),
    (["--phrase", "computer", "--feature-kd", "-1"], "--feature-kd"),
    (["--phrase", "computer", "--mining-threshold", "1.5"], "--mining-threshold"),
    (["--phrase", "computer", "--verifier-budget", "-1"], "--verifier-budget"),
    (["--phrase", "computer", "--gate-recall", "1.5"], "--gate-recall"),
    (["--phrase", "computer", "--gate-views", "-1"], "--gate-views"),
    (["--phrase", "computer", "--peak-power", "5"], "--peak-power"),
    (["--phrase", "computer", "--verifier-lookback-ms", "-1"], "--verifier-lookback-ms"),
])
def test_bad_phrases_are_one_clear_line_before_any_work(tmp_path: Path, args: list[str], message: str) -> None:
    p = _edgekd("train", "wakeword", *args, "--out", tmp_path / "o", ok=False)
    assert p.returncode != 0 and message in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "o").exists()


def test_a_peak_power_or_lookback_out_of_range_is_refused_before_any_work() -> None:
    from edgekd.core.errors import ConfigError
    from edgekd.recipes.custom_wakeword import PhraseRecipe, check_recipe

    check_recipe(PhraseRecipe(phrases=("computer",), peak_power=0.0))  # 0: the verifier's posterior alone
    for bad in (-0.5, 4.5, float("nan")):
        with pytest.raises(ConfigError, match="--peak-power must be within"):
            check_recipe(PhraseRecipe(phrases=("computer",), peak_power=bad))
    check_recipe(PhraseRecipe(phrases=("computer",), verifier_lookback_ms=0))  # 0: the last second alone
    for bad_ms in (-1, 1001):
        with pytest.raises(ConfigError, match="--verifier-lookback-ms must be a whole number from 0 to 1000"):
            check_recipe(PhraseRecipe(phrases=("computer",), verifier_lookback_ms=bad_ms))


def test_evaluation_speech_confusables_leave_out_the_one_letter_edits() -> None:
    """The one-letter edits ("jomputer", "bmart mirror") train; the speech a threshold is chosen on
    plants only what people say (partials, close words), in the training list's order."""
    from edgekd.data.confusables import confusables
    from edgekd.data.synth_wakeword import phrase_confusables

    for phrase in ("computer", "smart mirror"):
        kinds = {c.text: c.kind for c in confusables(phrase)}
        everything, spoken = phrase_confusables((phrase,)), phrase_confusables((phrase,), edits=False)
        assert any(kinds[t] == "edit" for t in everything), "the training list holds edits"
        assert spoken == tuple(t for t in everything if kinds[t] != "edit") and spoken
    assert phrase_confusables(("hey jarvis",), edits=False) == phrase_confusables(("hey jarvis",))


def test_speech_windows_count_and_material_key() -> None:
    """--speech-windows sets how many running-speech windows become _unknown_ clips; left out, the material key is
    the one folders made before the option carry, so they stay valid."""
    from edgekd.core.errors import ConfigError
    from edgekd.recipes.custom_wakeword import PhraseRecipe, _material_key, _speech_window_count, check_recipe, confusable_clip_count

    default, more = PhraseRecipe(phrases=("computer",), per_word=7), PhraseRecipe(phrases=("computer",), per_word=7, speech_windows=21)
    assert _speech_window_count(default) == 7 and _speech_window_count(more) == 21
    assert "speech_windows" not in _material_key(default) and _material_key(more)["speech_windows"] == 21
    assert {k: v for k, v in _material_key(more).items() if k != "speech_windows"} == _material_key(default)
    with pytest.raises(ConfigError, match="--speech-windows"):
        check_recipe(PhraseRecipe(phrases=("computer",), speech_windows=0))
    # --phrase-windows likewise enters the key only when given
    assert "phrase_windows" not in _material_key(default)
    assert _material_key(PhraseRecipe(phrases=("computer",), per_word=7, phrase_windows=5))["phrase_windows"] == 5
    with pytest.raises(ConfigError, match="--phrase-windows"):
        check_recipe(PhraseRecipe(phrases=("computer",), phrase_windows=-1))
    # --confusable-clips: per_word // 5 unless given; in the key when there are any
    assert "confusable_clips" not in _material_key(PhraseRecipe(phrases=("computer",), per_word=4))
    assert _material_key(default)["confusable_clips"] == 1 and confusable_clip_count(PhraseRecipe(phrases=("x",))) == 200
    assert _material_key(default)["confusable_clips_of"] == "said"
    assert "confusable_clips" not in _material_key(PhraseRecipe(phrases=("computer",), per_word=7, confusable_clips=0))
    assert _material_key(PhraseRecipe(phrases=("computer",), per_word=7, confusable_clips=9))["confusable_clips"] == 9
    with pytest.raises(ConfigError, match="--confusable-clips"):
        check_recipe(PhraseRecipe(phrases=("computer",), confusable_clips=-1))
    # another training draw (train_seed) trains on the same material: the key does not change, the seed does
    assert _material_key(PhraseRecipe(phrases=("computer",), per_word=7, train_seed=5)) == _material_key(default)
    assert _material_key(PhraseRecipe(phrases=("computer",), per_word=7, seed=5)) != _material_key(default)
    with pytest.raises(ConfigError, match="seeds must be >= 0"):
        check_recipe(PhraseRecipe(phrases=("computer",), train_seed=-1))


def test_confusable_clips_add_clips_of_each_confusable_after_the_same_plan() -> None:
    """More clips of each confusable people say come on top of the even share, planned after it: the clips planned
    without the option stay the same draws (the synthesis cache's hits too); the one-letter edits get none, and the
    phrase itself never becomes a negative."""
    from collections import Counter

    from edgekd.data.synth_kws import _plan
    from edgekd.data.synth_wakeword import phrase_confusables, wakeword_config

    engines = {"espeak": 1.0}
    base = wakeword_config(phrases=("view glass",), per_word=20)
    more = wakeword_config(phrases=("view glass",), per_word=20, confusable_clips=5)
    jobs0, _, _ = _plan(base, engines)
    jobs1, _, _ = _plan(more, engines)
    assert jobs1[: len(jobs0)] == jobs0
    confusables, said = phrase_confusables(("view glass",)), phrase_confusables(("view glass",), edits=False)
    added = Counter(j.text for j in jobs1[len(jobs0):])
    assert added == {c: 5 for c in said} and "view glass" not in added
    assert set(confusables) - set(said) and not set(added) & (set(confusables) - set(said))  # the one-letter edits get no more
    assert all(j.folder == j.text.replace(" ", "_") for j in jobs1[len(jobs0):])


def test_running_speech_windows_hold_speech_and_an_older_material_folder_is_refused(tmp_path: Path) -> None:
    from edgekd.core.errors import ConfigError
    from edgekd.data.synth_wakeword import speech_windows
    from edgekd.recipes.custom_wakeword import PhraseRecipe, make_phrase_material
    from edgekd.runtime.wav import load_audio

    files = speech_windows(tmp_path / "w", 5, seed=3, phrase="computer", confusables=("comput", "puter"))
    assert [f.name for f in files] == [f"speech_{i:05d}.wav" for i in range(5)]
    assert all(x.shape == (16000,) and np.abs(x).max() >= 0.1 for x in map(lambda f: load_audio(f, 16000), files))
    old = tmp_path / "data"
    old.mkdir()
    (old / "material.json").write_text(json.dumps({"recipe": {}, "confusables": []}))  # made before the speech windows
    with pytest.raises(ConfigError, match="older recipe"):
        make_phrase_material(old, PhraseRecipe(phrases=("computer",)), say=lambda s: None)
    # a folder made before --confusable-clips: the error names the option that takes it as it is
    from edgekd.data.synth_wakeword import phrase_confusables
    from edgekd.recipes.custom_wakeword import MATERIAL_RULES, _material_key

    # tiny evaluation material: a folder taken as it is makes its eval/
    tiny: dict[str, Any] = {"positives": 1, "validation_minutes": 0.05, "test_minutes": 0.05, "engines": (("espeak", 1.0),)}
    before = PhraseRecipe(phrases=("computer",), confusable_clips=0, **tiny)
    (old / "material.json").write_text(json.dumps({"rules": MATERIAL_RULES, "recipe": _material_key(before),
                                                   "confusables": list(phrase_confusables(("computer",)))}))
    with pytest.raises(ConfigError, match="holds 0 more clips of each confusable, this recipe 200; give --confusable-clips 0"):
        make_phrase_material(old, PhraseRecipe(phrases=("computer",), **tiny), say=lambda s: None)
    make_phrase_material(old, before, say=lambda s: None)  # taken as it is
    # a folder whose one-letter edits got the extra clips too (before they went to the confusables people say only)
    edits_too = {k: v for k, v in _material_key(PhraseRecipe(phrases=("computer",), **tiny)).items() if k != "confusable_clips_of"}
    (old / "material.json").write_text(json.dumps({"rules": MATERIAL_RULES, "recipe": edits_too,
                                                   "confusables": list(phrase_confusables(("computer",)))}))
    for asked in (None, 0, 3):  # whatever count is asked, the folder cannot be taken as it is
        with pytest.raises(ConfigError, match="holds more clips of the one-letter edits too .*give a new --out$"):
            make_phrase_material(old, PhraseRecipe(phrases=("computer",), confusable_clips=asked, **tiny), say=lambda s: None)


def test_a_target_no_threshold_reaches_is_one_clear_error() -> None:
    from edgekd.core.errors import ConfigError
    from edgekd.recipes.custom_wakeword import choose_thresholds

    sweep = [{"threshold": t, "fa_per_hour": 30.0 - 10 * t, "frr": t} for t in (0.1, 0.5, 0.9)]
    assert choose_thresholds({"computer": {"chosen": sweep[1], "sweep": sweep}}, 25.0) == {"computer": 0.5}
    with pytest.raises(ConfigError, match=r"no threshold reaches 0.5 FA/h .*lowest is 21.00"):
        choose_thresholds({"computer": {"chosen": None, "sweep": sweep}}, 0.5)


def test_a_validation_too_short_for_the_target_is_said() -> None:
    from edgekd.recipes.custom_wakeword import validation_step, validation_warning

    step = validation_step({"smart_mirror": {"negative_seconds": 1200.0}, "view_glass": {"negative_seconds": 1800.0}})
    assert step == pytest.approx(3.0)  # 20 min: one false accept is 3 FA/h, the shorter validation decides
    assert validation_warning(step, 0.5) == ("warning: one false accept on the validation speech is 3.0 FA/h, over the 0.5 FA/h "
                                             "target, so the threshold is the one above every validation false accept (set by the "
                                             "highest one); --validation-minutes 120 or more lets it count them")
    assert "--validation-minutes 30 " in validation_warning(step, 2.0)


def test_mining_keeps_the_windows_a_fixed_student_fires_on(tmp_path: Path) -> None:
    """A shipped streaming bundle on its golden clip: every detection of its keywords becomes one 1 s WAV ending at the
    detection, and nothing else is written."""
    from edgekd.eval import wakeword as we
    from edgekd.recipes.custom_wakeword import mine_false_accepts
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.wav import load_audio

    bundle = REPO / "models" / "kws12-dscnn-stream-kd"
    audio = load_audio(bundle / "golden" / "clip.wav", 16000)
    det = load_kws(bundle, backend="onnx")
    labels = ("yes", "no", "up", "down")
    want = []
    for label in labels:
        t, s = we.bundle_scorer(det, label)(audio)
        want += [int(x * 16) for x in we.detections(t, s, 0.5) if int(x * 16) >= 16000]
    assert want, "the golden clip holds keywords the bundle detects"
    files = mine_false_accepts(bundle, audio, labels, 0.5, tmp_path / "mined")
    assert len(files) == len(want) == len(list((tmp_path / "mined").glob("*.wav")))
    for f, end in zip(files, want, strict=True):
        np.testing.assert_allclose(load_audio(f, 16000), audio[end - 16000 : end], atol=1 / 32767)


@pytest.mark.parametrize(("every", "cap", "hold", "lookback"), [(1, None, 0, 0), (2, None, 0, 0), (1, 2, 0, 0), (2, 2, 0, 0), (2, 3, 2, 0),
                                                           (2, 3, 2, 320)])
def test_gate_open_windows_are_the_seconds_the_verifier_is_asked_about(every: int, cap: int | None, hold: int, lookback: int) -> None:
    """The shipped two-stage alexa bundle's student alone, on its golden clip with a low gate: one window per inference
    that would ask the verifier (the first of each open run, then every ``every``-th, at most ``cap`` of them; a run
    lasting ``hold`` inferences after the score falls under the gate), each the second of audio before it, and with
    ``lookback`` the second that ends that many ms before each run's first inference too; ``limit`` keeps a subset,
    in order."""
    from edgekd.eval import wakeword as we
    from edgekd.recipes.custom_wakeword import gate_open_windows
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.wav import load_audio

    bundle = REPO / "models" / "alexa-dscnn-stream-64-kd-int8"
    audio = load_audio(bundle / "golden" / "clip.wav", 16000)
    t, s = we.bundle_scorer(load_kws(bundle, backend="onnx", verifier=False), "alexa")(audio)
    gate = float(np.quantile(s, 0.6))  # open for 40% of the inferences, in runs
    ends, earlier, run, uncapped, since = [], [], 0, 0, hold + 1
    for tm, v in zip(t, s, strict=True):
        since = 0 if v >= gate else since + 1
        run = run + 1 if since <= hold else 0
        if run and (run - 1) % every == 0 and int(round(tm * 16)) >= 16000:
            uncapped += 1
            if cap is None or (run - 1) // every < cap:
                ends.append(int(round(tm * 16)))
        if run == 1 and lookback and int(round((tm - lookback) * 16)) >= 16000:
            earlier.append(int(round((tm - lookback) * 16)))
    assert len(ends) >= 3 and (every == 1 or uncapped < int(np.sum(s >= gate))) and (cap is None or len(ends) < uncapped)
    assert bool(earlier) == bool(lookback) and (not lookback or not set(earlier) <= set(ends))  # windows no call ends at
    ends = sorted(set(ends) | set(earlier))
    windows = gate_open_windows(bundle, audio, {"alexa": gate}, every, max_calls=cap, hold=hold, lookback_ms=lookback)
    assert windows.shape == (len(ends), 16000) and windows.dtype == np.float32
    for w, end in zip(windows, ends, strict=True):
        np.testing.assert_array_equal(w, audio[end - 16000 : end])
    some = gate_open_windows(bundle, audio, {"alexa": gate}, every, limit=2, seed=1, max_calls=cap, hold=hold, lookback_ms=lookback)
    picked = [next(i for i, w in enumerate(windows) if np.array_equal(w, x)) for x in some]
    assert len(picked) == 2 and picked == sorted(set(picked))
    assert gate_open_windows(bundle, audio, {"alexa": 0.999}, every, max_calls=cap, hold=hold).shape == (0, 16000)
