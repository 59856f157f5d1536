import json
from pathlib import Path

from edgekd.data import KWS12_KEYWORDS
from edgekd.runtime.wav import read_wav


def _speaker_variant(rel: str) -> str:
    # file names are <variant>-<accent>_nohash_<n>.wav
    return Path(rel).name.split("_nohash_")[0].split("-")[0]


def test_layout_counts_and_audio(tiny_data: Path) -> None:
    meta = json.loads((tiny_data / "synth_meta.json").read_text())
    for w in KWS12_KEYWORDS:
        assert len(list((tiny_data / w).glob("*.wav"))) == 8
    assert len(list((tiny_data / "_silence_").glob("*.wav"))) == 8
    assert sum(meta["counts"].values()) == 10 * 8 + 16 + 8
    a = read_wav(next((tiny_data / "yes").glob("*.wav")))
    assert a.sample_rate == 16000 and a.samples.shape == (16000,) and a.samples.std() > 0.01


def test_test_voices_never_appear_in_training(tiny_data: Path) -> None:
    meta = json.loads((tiny_data / "synth_meta.json").read_text())
    split_of_variant = meta["variant_split"]
    test = set((tiny_data / "testing_list.txt").read_text().split())
    val = set((tiny_data / "validation_list.txt").read_text().split())
    for wav in tiny_data.glob("*/*.wav"):
        rel = f"{wav.parent.name}/{wav.name}"
        if wav.parent.name.startswith("_"):
            continue
        variant = _speaker_variant(rel)
        expected = split_of_variant[variant]
        actual = "test" if rel in test else "validation" if rel in val else "train"
        assert expected == actual, rel
