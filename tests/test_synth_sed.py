"""Soundscape synthesis and the event-source readers (ESC-50 layout, folder per class, Debian recordings)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.core.errors import ConfigError
from edgekd.data.synth_sed import SynthSedConfig, esc50_sources, folder_sources, source_recordings, synth_sed
from edgekd.eval.wakeword import read_annotations
from edgekd.runtime.wav import load_audio, write_wav


def _tone(path: Path, f: float, seconds: float = 0.5) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    write_wav(path, (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32), 16000)
    return path


@pytest.fixture()
def events_dir(tmp_path: Path) -> Path:
    root = tmp_path / "events"
    for k, cls in enumerate(("bell", "knock", "alarm")):
        (root / cls).mkdir(parents=True)
        for j in range(4):
            _tone(root / cls / f"{cls}{j}.wav", 300.0 * (k + 1) + 40 * j)
    return root


def test_soundscapes_from_a_folder_per_class(events_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sed"
    cfg = SynthSedConfig(scapes_train=6, scapes_validation=2, scapes_test=4, seconds=4.0)
    meta = synth_sed(out, cfg, sources=folder_sources(events_dir), synthesized=())
    assert meta["labels"] == ["alarm", "bell", "knock"]
    for split, n in (("train", 6), ("validation", 2), ("test", 4)):
        wavs = sorted((out / "audio" / split).glob("*.wav"))
        assert len(wavs) == n
        assert load_audio(wavs[0], 16000).shape[0] == 4 * 16000
        rows = read_annotations(out / f"{split}.tsv", labels=meta["labels"])
        assert rows and all(0 <= r.onset_s < r.offset_s <= 4.0 for r in rows)
        assert {r.filename for r in rows} <= {w.name for w in wavs}
    src = meta["sources"]
    for cls in meta["labels"]:  # test recordings are never training recordings
        assert src[cls]["test"] and src[cls]["train"] and not set(src[cls]["test"]) & set(src[cls]["train"])


def test_event_audio_is_where_the_tsv_says(events_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sed"
    synth_sed(out, SynthSedConfig(scapes_train=3, scapes_validation=1, scapes_test=1, seconds=4.0, snr_db=(20.0, 20.0)),
              sources=folder_sources(events_dir), synthesized=())
    rows = read_annotations(out / "train.tsv")
    r = rows[0]
    x = load_audio(out / "audio" / "train" / r.filename, 16000)
    inside = x[int(r.onset_s * 16000) : int(r.offset_s * 16000)]
    quiet = [x[int(a.offset_s * 16000) + 800 :] for a in rows if a.filename == r.filename]
    assert np.sqrt(np.mean(inside**2)) > 3 * min(np.sqrt(np.mean(q**2)) if q.size else 1.0 for q in quiet + [x[:1]])


def test_esc50_layout_and_its_errors(tmp_path: Path) -> None:
    root = tmp_path / "ESC-50"
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows = []
    for i, (cat, fold) in enumerate([("dog", 1), ("dog", 5), ("rain", 2), ("rain", 5)]):
        name = f"{fold}-{i}-A-0.wav"
        _tone(root / "audio" / name, 200 + 100 * i)
        rows.append({"filename": name, "fold": fold, "target": 0, "category": cat, "esc10": "False", "src_file": i, "take": "A"})
    with (root / "meta" / "esc50.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    src = esc50_sources(root)
    assert {k: (len(v["train"]), len(v["test"])) for k, v in src.items()} == {"dog": (1, 1), "rain": (1, 1)}
    (root / "audio" / rows[0]["filename"]).unlink()
    with pytest.raises(ConfigError, match=r"esc50.csv:2: .* is missing"):
        esc50_sources(root)
    with pytest.raises(ConfigError, match="no meta/esc50.csv"):
        esc50_sources(tmp_path)


def test_a_class_with_one_recording_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ev" / "solo").mkdir(parents=True)
    _tone(tmp_path / "ev" / "solo" / "a.wav", 440)
    with pytest.raises(ConfigError, match="at least two recordings"):
        folder_sources(tmp_path / "ev")


@pytest.mark.skipif(not Path("/usr/share/sonic-pi/samples").is_dir(),
                    reason="the Debian sound packages (sonic-pi-samples ...) are not installed; make test installs them when root")
def test_debian_recordings_give_classes_with_unseen_test_recordings(tmp_path: Path) -> None:
    src = source_recordings()
    assert len([c for c in src if c != "_background_"]) >= 6
    for cls, d in src.items():
        assert d["test"] and d["train"] and not set(d["test"]) & set(d["train"]), cls
    p = subprocess.run([sys.executable, "-m", "edgekd", "data", "synth-sed", str(tmp_path / "s"), "--train", "3", "--validation", "1", "--test", "2"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    meta = json.loads((tmp_path / "s" / "sed_meta.json").read_text())
    assert "speech" in meta["labels"] and "kick" in meta["labels"]
