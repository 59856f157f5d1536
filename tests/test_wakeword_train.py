"""Wake-word distillation targets: teacher scores -> pseudo-logits, transfer windows aligned with the teacher's hops."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
from edgekd.runtime.kws_post import softmax
from edgekd.train.features import FeatureSet
from edgekd.train.wakeword import prob_logits, transfer_windows, with_transfer


def test_pseudo_logits_put_the_teacher_score_on_the_keyword() -> None:
    p = np.array([0.001, 0.2, 0.5, 0.93, 0.9999])
    probs = softmax(prob_logits(p, keyword_index=0, n_labels=3).astype(np.float64))
    np.testing.assert_allclose(probs[:, 0], np.clip(p, 1e-4, 1 - 1e-4), rtol=1e-5)
    np.testing.assert_allclose(probs[:, 1], probs[:, 2])  # the rest split evenly


class _StepTeacher:
    """A stand-in scorer with a known timeline: score = index of the 80 ms hop / 1000."""

    def scores(self, audio: np.ndarray) -> np.ndarray:
        return np.arange(audio.shape[0] // 1280, dtype=np.float32) / 1000.0


def test_transfer_windows_take_the_teacher_score_at_the_window_end() -> None:
    fe = LogMelFrontend(FrontendParams())
    audio = (np.random.default_rng(0).standard_normal(16000 * 5) * 0.1).astype(np.float32)
    x, p = transfer_windows(_StepTeacher(), audio, fe, window_frames=98, stride_frames=25)  # type: ignore[arg-type]
    feats = fe.features(audio)
    assert x.shape[1:] == (98, 40) and x.shape[0] == (feats.shape[0] - 98) // 25 + 1
    np.testing.assert_array_equal(x[2], feats[50:148].astype(np.float16))
    # window 0 ends at frame 97: (97 * 160 + 480) / 16 = 1000 ms -> the hop that ends at 1040 ms is hop 12 (0-based)
    assert p[0] == np.float32(12 / 1000.0)
    assert np.all(np.diff(p) > 0)


def test_transfer_rows_are_unlabelled_clips_of_their_own() -> None:
    fs = FeatureSet(np.zeros((4, 98, 40), np.float16), np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), ("a", "b", "c"), "k")
    out = with_transfer(fs, np.ones((3, 98, 40), np.float32))
    assert len(out) == 7 and out.y[4:].tolist() == [-1, -1, -1] and out.clip[4:].tolist() == [2, 3, 4]
    assert out.key != fs.key and out.x.dtype == np.float16


def test_synth_wakeword_command_writes_clips_transfer_and_eval_material(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from edgekd.data.annotations import read_annotations
    from edgekd.runtime.wav import load_audio

    out = tmp_path / "ww"
    p = subprocess.run([sys.executable, "-m", "edgekd", "data", "synth-wakeword", str(out), "--per-word", "4", "--transfer-minutes", "0.1",
                        "--positives", "2", "--negative-minutes", "0.1", "--ordinary-minutes", "0.1", "--workers", "1",
                        "--flite-train-clips", "2", "--flite-negative-clips", "3", "--flite-transfer-minutes", "0.1"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert len(list((out / "clips" / "hey_jarvis").glob("*_nohash_*.wav"))) == 4 and (out / "clips" / "testing_list.txt").is_file()
    assert json.loads((out / "clips" / "synth_meta.json").read_text())
    assert len(list((out / "clips" / "hey_jarvis").glob("flite_*.wav"))) == 2
    assert len(list((out / "clips").glob("*/flite_*.wav"))) == 5  # + 3 confusables/words in their own folders
    assert len(read_annotations(out / "eval" / "positives_festival.tsv", labels=["hey_jarvis"])) == 1
    for wav in ("transfer.wav", "transfer_flite.wav", "eval/negatives.wav", "eval/ordinary.wav"):
        assert load_audio(out / wav, 16000).shape[0] == 6 * 16000, wav
    rows = read_annotations(out / "eval" / "positives.tsv", labels=["hey_jarvis"])
    assert sorted(r.filename for r in rows) == sorted(f.name for f in (out / "eval" / "positives").glob("*.wav")) and len(rows) == 2
    again = subprocess.run([sys.executable, "-m", "edgekd", "data", "synth-wakeword", str(out)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr


def test_other_engines_give_training_clips_and_annotated_positives(tmp_path: Path) -> None:
    """flite clips join a Speech Commands training folder as 1 s clips; festival speaks held-out positives whose tsv
    rows point at the phrase; an unknown engine is one clear error."""
    import pytest

    from edgekd.core.errors import ConfigError
    from edgekd.data.annotations import read_annotations
    from edgekd.data.synth_wakeword import engine_clips, positive_files
    from edgekd.runtime.wav import load_audio

    made = engine_clips(tmp_path / "clips", 2, engine="flite", seed=1)
    assert [p.name for p in made] == ["flite_00000.wav", "flite_00001.wav"] and all(p.parent.name == "hey_jarvis" for p in made)
    x = load_audio(made[0], 16000)
    assert x.shape[0] == 16000 and float(np.abs(x).max()) > 0.2
    tsv = positive_files(tmp_path / "fest", 1, engine="festival", seed=2)
    (row,) = read_annotations(tsv, labels=["hey_jarvis"])
    audio = load_audio(tmp_path / "fest" / row.filename, 16000)
    inside = audio[int(row.onset_s * 16000) : int(row.offset_s * 16000)]
    assert row.offset_s - row.onset_s > 0.3 and np.abs(inside).max() > 10 * np.abs(audio[: int(0.4 * 16000)]).max()
    with pytest.raises(ConfigError, match="give one of"):
        engine_clips(tmp_path / "clips", 1, engine="espeak")
    with pytest.raises(ConfigError, match="give one of"):
        positive_files(tmp_path / "x", 1, engine="pico")
    with pytest.raises(ConfigError, match="festival has no validation voices"):  # kal, slt train; ked test; none left for validation
        engine_clips(tmp_path / "clips", 1, engine="festival", split="validation")
    # several engines take turns: the first clip of (festival, espeak) is festival's own first clip
    positive_files(tmp_path / "mixed", 2, engine=("festival", "espeak"), seed=2)
    np.testing.assert_array_equal(load_audio(tmp_path / "mixed" / "pos_0000.wav", 16000), load_audio(tmp_path / "fest" / "pos_0000.wav", 16000))
    assert not np.array_equal(load_audio(tmp_path / "mixed" / "pos_0001.wav", 16000)[:8000], audio[:8000])
    from edgekd.data.synth_wakeword import heldout_engines

    assert heldout_engines("validation", ("festival", "flite", "espeak")) == ("espeak",)  # none of flite's or festival's voices validate
    assert heldout_engines("test", ("festival", "flite"))[:1] == ("espeak",) and "festival" in heldout_engines("test", ("festival",))


def test_other_engine_negatives_land_in_word_folders_and_voices_are_split(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """flite confusable/word clips go to each word's own folder (the loader maps them to _unknown_); flite speaks
    training material with its training voices only and held-out material with the held-out voice; running speech
    by flite has the asked length and is not silent."""
    import subprocess as sp

    from edgekd.data import synth_wakeword as sw
    from edgekd.data.speech_commands import SpeechCommands

    made = sw.engine_clips(tmp_path / "clips", 3, engine="flite", words=("hey travis", "jarvis"), seed=1)
    assert [(p.parent.name, p.name) for p in made] == [("hey_travis", "flite_00000.wav"), ("jarvis", "flite_00001.wav"),
                                                       ("hey_travis", "flite_00002.wav")]
    sw.engine_clips(tmp_path / "clips", 1, engine="flite", seed=2)
    (tmp_path / "clips" / "validation_list.txt").write_text("jarvis/other_nohash_0.wav\n")  # as synth_kws writes: unlisted = train
    clips = SpeechCommands(tmp_path / "clips").clips(("hey_jarvis", "_unknown_"), "train")
    assert sorted(c.label for c in clips) == ["_unknown_"] * 3 + ["hey_jarvis"]

    used: list[str] = []
    real_run = sp.run

    def spy(cmd, *a, **k):  # type: ignore[no-untyped-def]
        if cmd[0] == "flite":
            used.append(cmd[cmd.index("-voice") + 1])
        return real_run(cmd, *a, **k)

    monkeypatch.setattr(sp, "run", spy)
    rng = np.random.default_rng(0)
    for _ in range(12):
        sw._say_other_engine("flite", "hey", rng, "train")
    assert set(used) <= set(sw.ENGINE_VOICES["flite"]["train"]) and len(set(used)) > 1
    used.clear()
    for _ in range(4):
        sw._say_other_engine("flite", "hey", rng, "test")
    assert set(used) == set(sw.ENGINE_VOICES["flite"]["test"])
    assert not set(sw.ENGINE_VOICES["flite"]["train"]) & set(sw.ENGINE_VOICES["flite"]["test"])
    x = sw.speech_stream(8.0, split="train", seed=3, engine="flite", confusable_rate=0.0)
    assert x.shape[0] == 8 * 16000 and float(np.abs(x).max()) > 0.1
