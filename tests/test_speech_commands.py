from pathlib import Path

import numpy as np
import pytest

from edgekd.core.errors import DataError
from edgekd.data import KWS12_LABELS
from edgekd.data.speech_commands import SpeechCommands, which_split
from edgekd.runtime.wav import write_wav


def _make(root: Path, words: dict[str, list[str]], noise: bool = False) -> None:
    for w, speakers in words.items():
        for i, s in enumerate(speakers):
            write_wav(root / w / f"{s}_nohash_{i}.wav", np.full(1600, 0.1, np.float32), 16000)
    if noise:
        write_wav(root / "_background_noise_" / "white.wav", np.random.default_rng(0).standard_normal(48000).astype(np.float32) * 0.1, 16000)


def test_real_layout_with_lists_and_unknown_mapping(tmp_path: Path) -> None:
    kws = {k: ["aaaa1111", "bbbb2222"] for k in KWS12_LABELS[:10]}
    _make(tmp_path, {**kws, "marvin": ["cccc3333"], "tree": ["dddd4444"]}, noise=True)
    (tmp_path / "validation_list.txt").write_text("yes/bbbb2222_nohash_1.wav\n")
    (tmp_path / "testing_list.txt").write_text("marvin/cccc3333_nohash_0.wav\nno/aaaa1111_nohash_0.wav\n")
    ds = SpeechCommands(tmp_path)
    test = ds.clips(KWS12_LABELS, "test")
    labels = sorted(c.label for c in test)
    assert "_unknown_" in labels and "no" in labels  # marvin -> _unknown_
    assert labels.count("_silence_") >= 1  # cut from _background_noise_
    val = ds.clips(KWS12_LABELS, "validation")
    assert [c.path.name for c in val if c.label != "_silence_"] == ["bbbb2222_nohash_1.wav"]
    train = ds.clips(KWS12_LABELS, "train")
    names = {f"{c.path.parent.name}/{c.path.name}" for c in train if c.label != "_silence_"}
    assert "yes/bbbb2222_nohash_1.wav" not in names and "tree/dddd4444_nohash_1.wav" not in names
    sil = next(c for c in test if c.label == "_silence_")
    assert sil.load(16000).shape == (16000,)


def test_hash_split_without_lists_keeps_a_speaker_in_one_split(tmp_path: Path) -> None:
    assert which_split("yes/abc_nohash_0.wav") == which_split("no/abc_nohash_7.wav")
    splits = {which_split(f"x/{i:08x}_nohash_0.wav") for i in range(200)}
    assert splits == {"train", "validation", "test"}


def test_missing_label_folder_is_one_clear_error(tmp_path: Path) -> None:
    _make(tmp_path, {"yes": ["a"], "no": ["b"]})
    with pytest.raises(DataError, match="no folder for label"):
        SpeechCommands(tmp_path).clips(KWS12_LABELS, "all")


def test_silence_label_without_noise_or_folder_is_refused(tmp_path: Path) -> None:
    _make(tmp_path, {k: ["a"] for k in KWS12_LABELS[:10]})
    with pytest.raises(DataError, match="_silence_"):
        SpeechCommands(tmp_path).clips(KWS12_LABELS, "all")


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such data folder"):
        SpeechCommands(tmp_path / "nope")
