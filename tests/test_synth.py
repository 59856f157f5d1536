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


def test_the_same_dataset_comes_out_of_another_run(tiny_data: Path, tmp_path: Path) -> None:
    """espeak-ng's random generator is seeded per utterance: a second run writes the same audio byte for byte (unseeded,
    about a tenth of these clips differed from run to run)."""
    from tests.conftest import synth_tiny

    again = synth_tiny(tmp_path / "again")
    files = sorted(p.relative_to(tiny_data) for p in tiny_data.rglob("*.wav"))
    assert len(files) >= 100 and files == sorted(p.relative_to(again) for p in again.rglob("*.wav"))
    assert [f for f in files if (tiny_data / f).read_bytes() != (again / f).read_bytes()] == []
