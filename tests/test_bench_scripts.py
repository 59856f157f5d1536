"""Each bench script runs end to end on tiny material and writes a well-formed result (numbers are not checked
against goals: benchmarks are not tests). The study scripts (kd_study, voices_study, sed, wakeword) run with a few
clips and one epoch: their whole path, not their results."""

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


def test_openwakeword_peer_side_by_side(clip: Path, tmp_path: Path) -> None:
    """The peer comparison of `make bench`: openWakeWord's Model.predict and its ONNX pipeline against a shipped
    streaming int8 bundle on the same WAV, one round: every cost, the ratio and the profile split are recorded."""
    pytest.importorskip("openwakeword", reason="oww extra (the peer)")
    bundle = REPO / "models" / "kws12-dscnn-stream64-kd-int8"
    _bench("peers/openwakeword_peer.py", "--bundle", bundle, "--wav", clip, "--out", tmp_path / "p.json", "--rounds", "1")
    d = json.loads((tmp_path / "p.json").read_text())
    assert len(d["rounds_raw_s"]) == 1 and d["openwakeword"]["cpu_ms_per_audio_s_model_predict"] > 0
    assert d["ratio_edgekd_to_oww_model_predict"] == pytest.approx(d["edgekd"]["cpu_ms_per_audio_s"] / d["openwakeword"]["cpu_ms_per_audio_s_model_predict"])
    assert d["edgekd"]["mode"] == "stream" and set(d["edgekd"]["profile_cpu_ms_per_audio_s"]) == {"frontend", "model", "glue_and_postprocess"}
    assert d["floor"]["student_macs_per_audio_s"] > 0 and d["peak_rss_mb"]


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


def test_tflite_stream_parity_over_clips_the_export_never_saw(tiny_data: Path, tmp_path: Path) -> None:
    """The LiteRT stream twins of the shipped int8 streaming bundles stay within the export's limit on clips other than
    their golden windows, and agree with ONNX on the top label at nearly every hop; a bundle without a twin is refused."""
    from edgekd.export.tflite_stream import STREAM_PARITY_STEPS

    bundles = [REPO / "models" / "kws12-dscnn-stream-kd-int8", REPO / "models" / "kws12-dscnn-stream64-kd-int8"]
    _bench("tflite_stream_parity.py", *bundles, "--data", tiny_data, "--clips", 12, "--json", tmp_path / "p.json")
    rows = json.loads((tmp_path / "p.json").read_text())["rows"]
    assert [r["bundle"] for r in rows] == [b.name for b in bundles]
    for r in rows:
        assert r["clips"] == 12 and r["hops"] >= 12 * 10
        assert 0 < r["max_steps"] <= STREAM_PARITY_STEPS and r["top_label_agreement"] >= 0.95
    bad = subprocess.run([sys.executable, str(REPO / "bench" / "tflite_stream_parity.py"), str(STREAM), "--data", str(tiny_data),
                          "--json", str(tmp_path / "q.json")], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert bad.returncode != 0 and "no LiteRT streaming twin" in bad.stderr and not (tmp_path / "q.json").exists()


def test_se_finetune_probe_on_tiny_material(tiny_data: Path, tmp_path: Path) -> None:
    """The backbone-fine-tuning probe: its torch port of the last layer equals the ONNX embedding (it refuses to run
    otherwise), and both arms are scored."""
    _bench("se_finetune_probe.py", "--data", tiny_data, "--realdev", tmp_path / "none", "--seeds", 0, "--epochs", 1,
           "--json", tmp_path / "p.json")
    d = json.loads((tmp_path / "p.json").read_text())
    assert d["ported_conv_max_abs_diff"] < 1e-3
    assert [r["arm"] for r in d["runs"]] == ["frozen", "last conv trained"]
    assert all(0.0 <= r["validation_accuracy"] <= 1.0 and "realdev_accuracy" not in r for r in d["runs"])


def test_realdev_scores_the_speech_commands_bundles_of_models_not_the_wake_words(tiny_data: Path) -> None:
    """models/ holds wake-word bundles (task kws, a phrase that is no Speech Commands word): the yardstick's list of
    bundles leaves them out instead of failing on their labels."""
    sys.path.insert(0, str(REPO / "bench"))
    from realdev import kws_bundles

    picked = {b.name for b in kws_bundles(REPO / "models", tiny_data)}
    assert INT8.name in picked and "alexa-dscnn-stream-64-kd-int8" not in picked and "sed10-causal-cnn-kd-int8" not in picked
    assert (REPO / "models" / "alexa-dscnn-stream-64-kd-int8" / "manifest.json").is_file()


def _random_speech_embedding_teacher(path: Path, labels: tuple[str, ...]) -> None:
    """A speech-embedding teacher checkpoint with an untrained head: what the yardstick reads, not what it scores."""
    torch = pytest.importorskip("torch", reason="training extra")
    pytest.importorskip("openwakeword", reason="oww extra: the speech-embedding backbone files")
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.models import build_model
    from edgekd.train.teachers.speech_embedding import backbone_identity

    torch.manual_seed(0)
    kw = {"frames": 9, "hidden": 8, "folds": 0}
    Checkpoint(arch="speech-embedding", labels=labels, n_mels=96, frontend={}, window_frames=9,
               state_dict=build_model("speech-embedding", n_labels=len(labels), n_mels=96, **kw).state_dict(),
               config={"arch_kwargs": kw}, provenance={"backbone": backbone_identity()}).save(path)  # as a trained teacher records it


def _fake_realdev(tmp_path: Path) -> Path:
    """A stand-in realdev layout: two GSC clips, two 8 kHz FSDD clips, two positives of "yes" (a shipped bundle's golden clip)."""
    from edgekd.runtime.wav import load_audio
    from tests.realdev_layout import fake_realdev

    clip = load_audio(STREAM / "golden" / "clip.wav", 16000)
    return fake_realdev(tmp_path, "yes", [clip, clip], clip)


def test_the_real_negatives_wav_is_made_again_from_another_layout(tmp_path: Path) -> None:
    """The real negatives WAV is kept only while it was made from the same clips: one made from a stand-in layout (a
    test's) under the same name is made again from the layout asked for, never taken for it."""
    import numpy as np

    sys.path.insert(0, str(REPO / "bench"))
    from realdev_wakeword import real_negatives

    from edgekd.runtime.wav import load_audio
    from tests.realdev_layout import fake_realdev

    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 32000).astype(np.float32)
    a, b = _fake_realdev(tmp_path / "a"), fake_realdev(tmp_path / "b", "yes", [noise], noise)
    out = tmp_path / "work" / "real_negatives.wav"
    first = load_audio(real_negatives(a, out), 16000)
    stamp = out.stat().st_mtime_ns
    assert real_negatives(a, out) == out and out.stat().st_mtime_ns == stamp  # the same layout: kept
    other = load_audio(real_negatives(b, out), 16000)
    assert np.array_equal(other, load_audio(real_negatives(b, tmp_path / "fresh.wav"), 16000)) and not np.array_equal(other, first)
    stamp = out.stat().st_mtime_ns
    assert real_negatives(b, out) == out and out.stat().st_mtime_ns == stamp
    (tmp_path / "work" / "real_negatives.wav.json").unlink()  # a WAV nothing vouches for is made again too
    real_negatives(b, out)
    assert out.stat().st_mtime_ns != stamp and (tmp_path / "work" / "real_negatives.wav.json").is_file()


def test_the_yardsticks_mean_posterior_of_bundles(tmp_path: Path) -> None:
    """The seed ensemble's scorer on the stand-in layout: its timeline is the mean of the bundles' own timelines, and a
    bundle averaged with itself gives exactly that bundle's sweep."""
    import numpy as np

    sys.path.insert(0, str(REPO / "bench"))
    from realdev_wakeword import evaluate, evaluate_mean, mean_scorer, real_negatives

    from edgekd.eval.wakeword import bundle_scorer
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.wav import load_audio

    real = _fake_realdev(tmp_path)
    neg = real_negatives(real, tmp_path / "neg.wav")
    pos, tsv = real / "wakeword_dev" / "yes", real / "wakeword_dev" / "yes.tsv"
    one = evaluate(STREAM, "yes", pos, tsv, [neg])
    twice = evaluate_mean([STREAM, STREAM], "yes", pos, tsv, [neg])
    assert twice["sweep"] == one["sweep"] and twice["positives"] == 2 and twice["negative_hours"] == pytest.approx(one["negative_hours"])
    other = REPO / "models" / "kws12-dscnn-stream-kd-int8"
    x = load_audio(neg, 16000)
    (ta, a), (tb, b) = (bundle_scorer(load_kws(m, backend="onnx", threads=1), "yes")(x) for m in (STREAM, other))
    t, m = mean_scorer([STREAM, other], "yes")(x)
    assert np.array_equal(t, ta) and np.array_equal(ta, tb) and not np.allclose(a, b)
    np.testing.assert_allclose(m, (a + b) / 2, rtol=0, atol=1e-12)


def test_realdev_wakeword_on_a_fake_realdev_layout(tmp_path: Path) -> None:
    """The real-voice wake-word yardstick on a stand-in layout (two GSC clips, two 8 kHz FSDD clips, positives of
    "yes" from a shipped bundle's golden clip): FRR at each FA/h point on real negatives alone and with synthesized
    speech added, and the bundle's own threshold."""
    import numpy as np

    from edgekd.runtime.wav import write_wav

    real = _fake_realdev(tmp_path)
    synth = tmp_path / "synth.wav"
    write_wav(synth, np.zeros(16000 * 3, np.float32), 16000)
    out = tmp_path / "r.json"
    teacher = tmp_path / "teacher.pt"
    _random_speech_embedding_teacher(teacher, ("yes", "_unknown_", "_silence_"))
    proc = _bench("realdev_wakeword.py", "--bundle", f"yes={STREAM}", "--teacher", f"yes={teacher}", "--realdev", real, "--synth-negatives", synth,
                  "--work", tmp_path / "w", "--json", out)
    result = json.loads(out.read_text())
    row, trow = result["results"]
    assert result["command"].startswith("python bench/realdev_wakeword.py --bundle yes=") and f"--teacher yes={teacher}" in result["command"]
    assert trow["teacher"] == str(teacher) and trow["real_negatives_only"]["positives"] == 2 and "yes (teacher): FRR" in proc.stdout
    assert trow["real_negatives_only"]["negative_hours"] == pytest.approx(row["real_negatives_only"]["negative_hours"])
    # the teacher's second yardstick joins its real and synthesized timelines: the hours add up, and no threshold
    # finds fewer false accepts with more speech; the real-only sweep is the plain streamed one
    tboth = trow["real_and_synthesized_negatives"]
    assert tboth["negatives"] == [str(tmp_path / "w" / "real_negatives.wav"), str(synth)] and "with synthesized speech): FRR" in proc.stdout
    assert tboth["negative_hours"] == pytest.approx(trow["real_negatives_only"]["negative_hours"] + 3 / 3600, rel=1e-6)
    assert all(b["false_accepts"] >= a["false_accepts"] for a, b in zip(trow["real_negatives_only"]["sweep"], tboth["sweep"], strict=True))
    sys.path.insert(0, str(REPO / "bench"))
    from realdev_wakeword import _sweep

    from edgekd.train.teachers.embedding_teacher import embedding_teacher_scorer

    wd = real / "wakeword_dev"
    plain = _sweep(embedding_teacher_scorer(teacher, "yes"), "yes", wd / "yes", wd / "yes.tsv", [tmp_path / "w" / "real_negatives.wav"])
    assert plain["sweep"] == trow["real_negatives_only"]["sweep"]
    r, both = row["real_negatives_only"], row["real_and_synthesized_negatives"]
    assert r["positives"] == 2 and r["negative_hours"] == pytest.approx((4 * 1.25) / 3600, rel=0.02)
    assert both["negative_hours"] == pytest.approx(r["negative_hours"] + 3 / 3600, rel=0.02)
    assert set(r) >= {"frr_at_0.5_fa_per_hour", "frr_at_5_fa_per_hour", "at_bundle_threshold"} and "yes (bundle): FRR" in proc.stdout
    assert "yes (bundle, with synthesized speech): FRR" in proc.stdout and f"{both['negative_hours']:.2f} h of negatives," in proc.stdout
    assert r["verifier_calls_per_hour"] is None and "verifier calls" not in proc.stdout  # one stage: no verifier to count
    absent = _bench("realdev_wakeword.py", "--realdev", tmp_path / "nowhere", "--json", tmp_path / "n.json")
    assert "absent" in absent.stdout and not (tmp_path / "n.json").exists()


def test_wakeword_peer_on_stand_in_material(tmp_path: Path) -> None:
    """The wake-word side by side: a bundle and openWakeWord's head on the same positives and negatives (here: "yes"
    from a shipped bundle's golden clip, and silence), FRR at each FA/h point for both, CPU of both and their ratio."""
    pytest.importorskip("openwakeword", reason="oww extra (the peer)")
    import numpy as np

    from edgekd.runtime.wav import load_audio, write_wav

    mat = tmp_path / "m"
    clip = load_audio(STREAM / "golden" / "clip.wav", 16000)
    for i in range(2):
        write_wav(mat / "yes" / f"p{i}.wav", clip, 16000)
    (mat / "yes.tsv").write_text("filename\tonset\toffset\tevent_label\n"
                                 + "".join(f"p{i}.wav\t0.0\t{clip.shape[0] / 16000:.3f}\tyes\n" for i in range(2)))
    write_wav(mat / "negatives.wav", 0.01 * np.random.default_rng(0).standard_normal(16000 * 4).astype(np.float32), 16000)
    out = tmp_path / "w.json"
    proc = _bench("wakeword_peer.py", "--bundle", STREAM, "--wakeword", "alexa", "--label", "yes", "--material", mat, "--json", out,
                  "--cpu-seconds", "2")
    d = json.loads(out.read_text())
    for name in ("edgekd", "openwakeword"):
        assert d[name]["positives"] == 2 and d[name]["negative_hours"] == pytest.approx(4 / 3600, rel=0.01)
        assert set(d[name]) >= {"frr_at_0.5_fa_per_hour", "frr_at_5_fa_per_hour", "own_threshold"}
    assert d["openwakeword"]["own_threshold"]["threshold"] == pytest.approx(0.5)
    c = d["cpu_ms_per_audio_s"]
    assert c["ratio_edgekd_to_oww_model_predict"] == pytest.approx(c["edgekd"] / c["openwakeword_model_predict"])
    assert "openWakeWord Model.predict" in proc.stdout
    # a phrase openWakeWord has no head for: the CPU side alone, against Model.predict with the head named; it needs
    # only the negatives' audio, no positives
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "negatives.wav").write_bytes((mat / "negatives.wav").read_bytes())
    other = tmp_path / "other.wav"  # the CPU side on other audio than the material's negatives
    write_wav(other, np.zeros(16000 * 3, np.float32), 16000)
    only = _bench("wakeword_peer.py", "--bundle", STREAM, "--wakeword", "computer", "--label", "yes", "--material", bare, "--json",
                  tmp_path / "c.json", "--cpu-seconds", "2", "--cpu-only", "--oww-head", "hey_jarvis", "--cpu-wav", other)
    c = json.loads((tmp_path / "c.json").read_text())
    assert "edgekd" not in c and "openwakeword" not in c and c["openwakeword_head"] == "hey_jarvis"
    assert c["cpu_ms_per_audio_s"]["edgekd"] > 0 and "scoring" not in only.stdout
    assert c["cpu_ms_per_audio_s"]["wav"] == str(other) and c["cpu_ms_per_audio_s"]["audio_seconds"] == pytest.approx(2.0)
    bad = subprocess.run([sys.executable, str(REPO / "bench" / "wakeword_peer.py"), "--bundle", str(STREAM), "--material", str(bare),
                          "--json", str(tmp_path / "x.json"), "--cpu-only", "--cpu-wav", str(tmp_path / "nowhere.wav")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--cpu-wav" in bad.stderr and "Traceback" not in bad.stderr and not (tmp_path / "x.json").exists()


def test_summarize_renders_the_committed_bench_readme(tmp_path: Path) -> None:
    """bench/README.md is what bench/summarize.py makes of the committed result files (regenerate it when they change)."""
    _bench("summarize.py", "--out", tmp_path / "README.md")
    assert (tmp_path / "README.md").read_text() == (REPO / "bench" / "README.md").read_text()


def test_kd_study_on_tiny_material(tiny_data: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The study's whole path (every cell trained, scored, tabled, written) with a tiny teacher and one short epoch."""
    out = tmp_path / "kd.json"
    _bench("kd_study.py", "--data", tiny_data, "--teacher", f"tiny={tiny_checkpoint}", "--students", "dscnn", "--seeds", "0",
           "--epochs", "1", "--views", "1", "--jobs", "1", "--threads", "1", "--cache-dir", tmp_path / "cache",
           "--work", tmp_path / "work", "--out", out, "--realdev", tmp_path / "no-realdev")
    d = json.loads(out.read_text())
    assert sorted(r["teacher"] for r in d["runs"]) == ["none", "tiny"]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and "realdev_accuracy" not in r for r in d["runs"])  # no realdev: no number
    assert "| dscnn | tiny |" in d["table_md"] and d["teacher_scores"][0]["teacher"] == "tiny"


def test_kd_study_cells_with_training_options(tiny_data: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A cell of hard labels with a training option beside the plain one, and a teacher's cell twice, with and without
    an option: each reaches its students' checkpoints and the table (the teacher scored in one row); an option of no
    known cell is refused before any training."""
    import shutil

    from edgekd.data import KWS12_KEYWORDS

    out, work, real = tmp_path / "kd.json", tmp_path / "work", tmp_path / "realdev"
    labels = (*KWS12_KEYWORDS, "_silence_")
    for label in labels:  # a stand-in for the real speakers: one clip of each keyword and of silence (the real path of the scoring)
        (real / label).mkdir(parents=True)
        f = sorted((tiny_data / label).glob("*.wav"))[0]
        shutil.copy(f, real / label / f.name)
    common = ["--data", tiny_data, "--students", "dscnn", "--seeds", "0", "--epochs", "1", "--views", "1", "--jobs", "1",
              "--threads", "1", "--cache-dir", tmp_path / "cache", "--work", work, "--out", out, "--realdev", real]
    bad = subprocess.run([sys.executable, str(REPO / "bench" / "kd_study.py"), *map(str, common), "--teacher", f"tiny={tiny_checkpoint}",
                          "--train-option", "tyni:ema=0.9"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode != 0 and "--train-option 'tyni:ema=0.9'" in bad.stderr and not work.exists()
    _bench("kd_study.py", *common, "--teacher", f"tiny={tiny_checkpoint}", "--teacher", f"tiny-ema={tiny_checkpoint}",
           "--teacher", "warped=none", "--train-option", "warped:freq_warp=0.1", "--train-option", "tiny-ema:ema=0.9")
    d = json.loads(out.read_text())
    assert sorted(r["teacher"] for r in d["runs"]) == ["none", "tiny", "tiny-ema", "warped"] and len(d["teacher_scores"]) == 2
    from edgekd.train.checkpoint import Checkpoint

    cfg = {c: Checkpoint.load(work / f"dscnn-{c}-s0.pt").config for c in ("none", "tiny", "tiny-ema", "warped")}
    assert (cfg["warped"]["freq_warp"], cfg["warped"]["alpha"], cfg["warped"]["ema"]) == (0.1, 0.0, 0.0)
    assert (cfg["tiny-ema"]["ema"], cfg["tiny-ema"]["freq_warp"], cfg["tiny"]["ema"]) == (0.9, 0.0, 0.0)
    assert cfg["none"]["freq_warp"] == cfg["none"]["ema"] == 0.0
    assert "| dscnn | warped + warp 0.1 |" in d["table_md"] and "| dscnn | tiny-ema + EMA 0.9 |" in d["table_md"]
    assert "| (the teacher itself) | tiny, tiny-ema |" in d["table_md"] and d["table_md"].count("(the teacher itself)") == 1  # one row
    scored = [r["realdev_accuracy"] for r in d["runs"]] + [d["teacher_scores"][0]["realdev_accuracy"]]
    assert all(0.0 <= a <= 1.0 and abs(a * len(labels) - round(a * len(labels))) < 1e-9 for a in scored)  # of the 11 clips


def test_voices_study_on_tiny_material(tiny_data: Path, tmp_path: Path) -> None:
    """One variant of the voice study on the tiny espeak-only set: subset by engine, train, score, table, JSON."""
    out = tmp_path / "voices.json"
    _bench("voices_study.py", "--data", tiny_data, "--only", "espeak", "--steps", "4", "--views", "1", "--threads", "1",
           "--workers", "1", "--out", tmp_path / "work", "--json", out, "--realdev", tmp_path / "no-realdev")
    d = json.loads(out.read_text())
    assert d["engines_present"] == ["espeak"]
    rows = [r for r in d["runs"] if r["variant"] == "espeak"]
    assert len(rows) == 1 and rows[0]["steps"] == 4 and 0.0 <= rows[0]["synth_test_accuracy_by_engine"]["espeak"] <= 1.0


def test_sed_study_on_tiny_material(tmp_path: Path) -> None:
    """The SED study's path (soundscapes, teacher, distilled and plain students, QAT int8, tuning, scoring through the
    runtime) on a dozen soundscapes and one epoch each; --transfer 0 means no transfer set."""
    out = tmp_path / "sed.json"
    _bench("sed.py", "--out", tmp_path / "work", "--json", out, "--train", "12", "--validation", "6", "--test", "6",
           "--transfer", "0", "--teacher-epochs", "1", "--student-epochs", "1", "--qat-epochs", "1", "--threads", "1")
    d = json.loads(out.read_text())
    assert d["test_soundscapes"] == 6 and d["transfer_soundscapes"] == 0 and len(d["models"]) == 4
    int8 = d["models"]["student distilled, QAT int8"]
    assert int8["quantization"] == "int8-qat" and 0.0 <= int8["event_f1"] <= 1.0 and Path(int8["bundle"]).is_dir()
    from edgekd.train.checkpoint import Checkpoint  # every SED model is saved in the one checkpoint format

    teacher, qat = Checkpoint.load(tmp_path / "work" / "teacher.pt"), Checkpoint.load(tmp_path / "work" / "student_kd_qat.pt")
    assert (teacher.arch, teacher.is_qat, qat.arch, qat.is_qat) == ("sed-crnn", False, "sed-causal-cnn", True)
    assert qat.build()(__import__("torch").zeros(1, 40, 40)).shape == (1, 10, len(qat.labels))


def test_wakeword_study_on_tiny_material(tmp_path: Path) -> None:
    """The wake-word study's path (phrase, confusables and running speech synthesized; the openWakeWord head as teacher,
    scored file by file; a distilled student trained, exported and scored the same way) in seconds of audio. Its
    students stay under --out: they are distilled from a CC BY-NC-SA head."""
    out = tmp_path / "ww.json"
    _bench("wakeword.py", "--out", tmp_path / "work", "--json", out, "--per-word", "6", "--positives", "6", "--transfer-minutes", "0.2",
           "--negative-minutes", "0.2", "--ordinary-minutes", "0.2", "--engine-negative-minutes", "0", "--epochs", "1", "--qat-epochs", "0",
           "--no-baseline", "--extra-strides-ms", "", "--workers", "1", "--flite-train-clips", "0", "--flite-negative-clips", "0",
           "--flite-transfer-minutes", "0")
    d = json.loads(out.read_text())
    assert {"teacher (openWakeWord hey_jarvis)", "student distilled (dscnn)"} <= set(d["systems"])
    assert d["positives"] == 6 and d["negative_hours"] > 0


def test_the_timing_bench_finds_where_a_phrase_ends() -> None:
    """``phrase_end_ms`` (bench/verifier_timing.py): the end of the last 10 ms frame within 30 dB of the loudest, so a
    quiet tail 40 dB down does not count and a louder one does; ``utterance`` on the shipped two-stage alexa bundle's
    golden clip: the gate opens after the stream's start and the verifier's best second ends within the stream."""
    import numpy as np

    sys.path.insert(0, str(REPO / "bench"))
    from verifier_timing import phrase_end_ms, utterance

    from edgekd.eval import wakeword as we
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.wav import load_audio

    sr = 16000
    x = np.zeros(sr, np.float32)
    x[3200:11200] = np.sin(2 * np.pi * 440.0 * np.arange(8000) / sr)  # 0.2-0.7 s
    x[11200:14400] = 0.01 * np.sin(2 * np.pi * 440.0 * np.arange(3200) / sr)  # -40 dB to 0.9 s
    assert phrase_end_ms(x, sr) == 700.0
    x[11200:14400] *= 10.0  # -20 dB: part of the phrase
    assert phrase_end_ms(x, sr) == 900.0
    bundle = REPO / "models" / "alexa-dscnn-stream-64-kd-int8"
    audio = load_audio(bundle / "golden" / "clip.wav", 16000)
    det = load_kws(bundle, backend="onnx")
    t, s = we.bundle_scorer(load_kws(bundle, backend="onnx", verifier=False), "alexa")(audio)
    gate = float(np.quantile(s, 0.9))
    row = utterance(we.bundle_scorer(det, "alexa"), we.bundle_scorer(load_kws(bundle, backend="onnx", verifier=False), "alexa"),
                    det.verifier, det.verifier.labels.index("alexa"), gate, audio)
    # 1 s of silence before the clip: the same moment within one stride (the student's inference grid moves with it)
    assert abs(row["gate_opens_ms"] - (1000.0 + float(t[s >= gate][0]))) <= 160.0
    assert 1000.0 <= row["best_end_ms"] <= 2000.0 + 1000.0 * audio.shape[0] / sr and 0.0 <= row["verified"] <= 1.0 and 0.0 < row["best"] <= 1.0


def test_the_misses_bench_pitch_of_a_voice() -> None:
    """``pitch_hz`` (bench/realdev_wakeword_misses.py): a pulse train at f0 through a formant-like resonance reads f0
    within 2% (men's 110 Hz and women's 220 Hz alike, not an octave off), and silence or white noise is unvoiced."""
    import numpy as np

    sys.path.insert(0, str(REPO / "bench"))
    from realdev_wakeword_misses import pitch_hz

    sr = 16000
    for f0 in (110.0, 220.0):
        x = np.zeros(sr, np.float64)
        x[(np.arange(0, sr, sr / f0)).astype(int)] = 1.0
        k = np.arange(200)
        ring = np.exp(-k / 40.0) * np.cos(2 * np.pi * 700.0 * k / sr)  # a decaying 700 Hz resonance, as a vowel's first formant
        v = np.convolve(x, ring)[:sr].astype(np.float32)
        assert pitch_hz(v, sr) == pytest.approx(f0, rel=0.02)
    assert np.isnan(pitch_hz(np.zeros(sr, np.float32), sr))
    assert np.isnan(pitch_hz(np.random.default_rng(0).standard_normal(sr).astype(np.float32), sr))


def test_the_cascade_bench_gates_the_verifier_by_the_students_score() -> None:
    """``gated`` (bench/realdev_cascade.py): the verifier's score passes only at hops within ``hold_ms`` after the
    student's score reached the gate (at or before the hop, never after it); open hops and openings are counted;
    ``joined`` puts streams end to end."""
    import numpy as np

    sys.path.insert(0, str(REPO / "bench"))
    from realdev_cascade import gated, joined

    t = np.arange(0.0, 800.0, 80.0)  # 10 hops
    student = (t, np.array([0.0, 0.6, 0.1, 0.1, 0.1, 0.1, 0.7, 0.1, 0.1, 0.1]))
    teacher = (t, np.full(10, 0.9))
    (tt, v), calls, opened = gated(student, teacher, 0.5, hold_ms=160.0)
    assert tt is t and v.tolist() == [0.0, 0.9, 0.9, 0.0, 0.0, 0.0, 0.9, 0.9, 0.0, 0.0] and calls == 4 and opened == 2
    (_, v), calls, opened = gated(student, teacher, 0.65, hold_ms=80.0)
    assert v.tolist() == [0.0] * 6 + [0.9] + [0.0] * 3 and (calls, opened) == (1, 1)
    (_, v), calls, opened = gated(student, teacher, 0.5, hold_ms=160.0, every=2)  # the first and every second open hop
    assert v.tolist() == [0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0] and (calls, opened) == (2, 2)
    (_, v), calls, opened = gated(student, teacher, 0.5, hold_ms=240.0, max_calls=2)  # open hops 1-3 and 6-8: two calls each
    assert v.tolist() == [0.0, 0.9, 0.9, 0.0, 0.0, 0.0, 0.9, 0.9, 0.0, 0.0] and (calls, opened) == (4, 2)
    (_, v), calls, opened = gated(student, teacher, 0.95, hold_ms=1000.0)
    assert not v.any() and (calls, opened) == (0, 0)
    (jt, jv), seconds = joined([((t, t / 1000), 0.8), ((t, t / 100), 2.0)])
    assert seconds == 2.8 and jt.tolist() == [*t, *(t + 800.0)] and jv.tolist() == [*(t / 1000), *(t / 100)]


def test_the_budget_bench_links_the_trained_stages_and_leaves_out_what_the_budget_changes(tmp_path: Path) -> None:
    """``link_run`` (bench/verifier_budgets.py): the material and the trained stages are hard links of the run's files
    (nothing copied; the verifier head too, which the recipe trains again only where its windows change), the bundle,
    report, DET plot and earlier studies are left for the recipe to make again; a finished copy is kept as it is."""
    sys.path.insert(0, str(REPO / "bench"))
    from verifier_budgets import link_run

    run = tmp_path / "run"
    for rel in ("data/clips/smart_mirror/a.wav", "cache/f.npy", "mined/w.wav", "teacher.pt", "student-qat.pt",
                "bundle/manifest.json", "report.json", "det.png", "verifier.pt", "draws/seed1/report.json"):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(rel)
    out = run / "verifier-budgets" / "b2000"
    link_run(run, out)
    kept = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert kept == ["cache/f.npy", "data/clips/smart_mirror/a.wav", "mined/w.wav", "student-qat.pt", "teacher.pt", "verifier.pt"]
    assert all((out / k).stat().st_ino == (run / k).stat().st_ino for k in kept)
    assert not list(out.parent.glob(".*partial"))
    (out / "teacher.pt").unlink()
    link_run(run, out)  # made already: left as it is
    assert not (out / "teacher.pt").exists()


@pytest.mark.parametrize(("hold", "peak_power", "lookback"), [(0, 0.0, 0), (2, 0.0, 0), (2, 0.5, 0), (2, 0.25, 800)])
def test_the_rules_bench_scores_the_verifier_where_the_bundle_asks_it(tmp_path: Path, hold: int, peak_power: float, lookback: int) -> None:
    """``verified`` (bench/verifier_rules.py) under a bundle's own rule gives the pair scorer's timeline (the verified
    score where the runtime asks, 0 elsewhere), on the shipped two-stage alexa bundle, held open or not, weighing the
    opening's peak or not, its first calls looking back or not; a bad rule or look-back is refused in one line."""
    import argparse
    import shutil

    import numpy as np

    sys.path.insert(0, str(REPO / "bench"))
    from verifier_rules import AskedScores, parse_lookback, parse_rule, verified

    from edgekd.eval import wakeword as we
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.kws_post import held_open, verified_hops
    from edgekd.runtime.manifest import ModelManifest
    from edgekd.runtime.wav import load_audio

    bundle = tmp_path / "alexa"
    shutil.copytree(REPO / "models" / "alexa-dscnn-stream-64-kd-int8", bundle)
    m = ModelManifest.load(bundle)
    audio = load_audio(bundle / "golden" / "clip.wav", 16000)
    t_s, s = we.bundle_scorer(load_kws(bundle, backend="onnx", verifier=False), "alexa")(audio)
    gate = float(np.quantile(s, 0.7))  # open in runs on the golden clip
    (bundle / "manifest.json").write_text(json.dumps({**m.to_dict(), "verifier": {**m.to_dict()["verifier"], "gates": {"alexa": gate}, "hold": hold,
                                                                                 "peak_power": peak_power, "lookback_ms": lookback}}))
    pair = load_kws(bundle, backend="onnx", postprocess={"threshold": 1.0, "thresholds": {}})
    t, v = we.bundle_scorer(pair, "alexa")(audio)
    vb = pair.verifier_block
    asked = AskedScores(pair.verifier, "alexa", audio, t_s)
    own = parse_lookback(f"0|{lookback},0" if lookback else "0")
    got, mask = verified(asked, s, (gate, vb.every, vb.max_calls, hold), vb.peak_power, own)
    assert vb.peak_power == peak_power and vb.lookback_ms == lookback
    assert np.array_equal(mask, verified_hops(held_open(s >= gate, hold), vb.every, vb.max_calls))
    assert np.array_equal(t, t_s) and mask.sum() >= 2 and np.array_equal(got > 0, v > 0)
    np.testing.assert_allclose(got, v, atol=1e-6)
    if peak_power and not lookback:  # the peak weighs: under the verifier's posterior alone
        assert (got[mask] < asked.at(mask)[mask]).all()
    if lookback:  # the first calls heard an earlier second too, and it raised some of them (on this clip at 800 ms, not at 160-640)
        plain, _ = verified(asked, s, (gate, vb.every, vb.max_calls, hold), vb.peak_power)
        assert (got >= plain).all() and (got > plain).any()
    assert parse_lookback("0|320,0") == ((0, 320), (0,))
    for bad in ("-5", "a,0", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="ms"):
            parse_lookback(bad)
    assert parse_rule("0.08:2:-:2") == (0.08, 2, None, 2)
    for bad in ("0.08:2:3", "1.5:2:3:0", "0.1:0:3:0", "0.1:2:3:-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="GATE"):
            parse_rule(bad)
