"""The confusable generator: phonetically close, distinct texts, never the phrase (nor a homophone of it)."""

from __future__ import annotations

import pytest

pytest.importorskip("espeakng_loader", reason="train extra (espeak-ng)")

from edgekd.core.errors import ConfigError  # noqa: E402
from edgekd.data.confusables import confusables, normalize_phrase, phoneme_distance, phonemize  # noqa: E402


@pytest.mark.parametrize("phrase", ["computer", "Alexa", "smart  mirror"])
def test_confusables_are_close_distinct_and_never_the_phrase(phrase: str) -> None:
    text = normalize_phrase(phrase)
    target = phonemize(text).replace(" ", "")
    got = confusables(phrase, n=24)
    assert len(got) >= 8
    assert len({c.text for c in got}) == len(got) and len({c.phonemes.replace(" ", "") for c in got}) == len(got)
    assert all(c.text != text and c.phonemes.replace(" ", "") != target for c in got)
    assert all(0.2 <= c.distance <= 0.5 for c in got if c.kind != "partial")
    assert all(c.distance * max(len(target), len(c.phonemes.replace(" ", ""))) >= 2 - 1e-3 for c in got if c.kind != "partial")
    assert sum(c.kind == "edit" for c in got) <= 24 // 4  # near-misses stay a minority of the negatives
    assert all(c.distance == pytest.approx(phoneme_distance(c.phonemes, phonemize(text)), abs=1e-4) for c in got)
    edits = [c for c in got if c.kind == "edit"]
    assert edits and edits == sorted(edits, key=lambda c: c.distance)  # closest first
    assert {c.kind for c in got} >= {"partial", "edit"}


def test_partials_cut_the_phrase_short() -> None:
    assert {"smart", "mirror"} <= {c.text for c in confusables("smart mirror") if c.kind == "partial"}
    parts = {c.text for c in confusables("computer") if c.kind == "partial"}
    assert "com" in parts and "puter" in parts  # first and last syllables


def test_an_edit_changes_the_word_it_edits_audibly() -> None:
    """Two symbols of a long word are a near-homophone ("compujer" for "computer"): never a negative; the same two
    symbols in a short word of a longer phrase ("bmart mirror") are audible and stay."""
    for phrase in ("computer", "smart mirror"):
        words = phrase.split()
        for c in confusables(phrase):
            if c.kind == "edit":
                k = next(i for i, (a, b) in enumerate(zip(c.text.split(), words, strict=True)) if a != b)
                assert phoneme_distance(phonemize(c.text.split()[k]), phonemize(words[k])) >= 0.3
    assert not {c.text for c in confusables("computer")} & {"compujer", "computir", "computeb", "comxuter"}
    assert "bmart mirror" in {c.text for c in confusables("smart mirror")}
    assert "compujer" in {c.text for c in confusables("computer", min_edit_word_distance=0.0)}  # the rule is what removes it


def test_other_phrases_of_a_command_set_and_their_homophones_are_never_confusables() -> None:
    got = confusables("lights on", n=200, exclude=["lights off"], words=["lights off", "lites on", "nights on", "right on", "lights"])
    texts = {c.text for c in got}
    assert "lights off" not in texts
    assert phonemize("lites on").replace(" ", "") == phonemize("lights on").replace(" ", "")  # a homophone: a positive
    assert "lites on" not in texts
    assert "right on" in texts  # a list word two phoneme symbols away
    assert "nights on" not in texts  # one symbol away: a TTS engine says it almost like the phrase


@pytest.mark.parametrize("bad, message", [("", "empty"), ("   ", "empty"), ("hey 2000", "cannot phonemize"), ("こんにちは", "cannot phonemize")])
def test_a_phrase_espeak_cannot_take_is_one_clear_error(bad: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        confusables(bad)


def test_phoneme_distance() -> None:
    assert phoneme_distance("abc", "abc") == 0.0
    assert phoneme_distance("abcd", "abed") == 0.25
    assert phoneme_distance("a b", "ab") == 0.0  # spaces between words do not count
    assert phoneme_distance("", "ab") == 1.0


def test_synth_kws_with_phrases_of_your_own_adds_their_confusables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "edgekd", "data", "synth-kws", str(tmp_path / "d"), "--keywords", "lights on,lights off",
                        "--per-word", "2", "--unknown", "6", "--silence", "2", "--engines", "espeak", "--workers", "1"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    cfg = json.loads((tmp_path / "d" / "synth_meta.json").read_text())["config"]
    assert cfg["keywords"] == ["lights on", "lights off"]
    generated = {c.text for c in confusables("lights on", n=24, exclude=["lights off"])}
    assert generated & set(cfg["other_words"]) and not {"lights on", "lights off"} & set(cfg["other_words"])
    assert (tmp_path / "d" / "lights_on").is_dir() and (tmp_path / "d" / "lights_off").is_dir()
