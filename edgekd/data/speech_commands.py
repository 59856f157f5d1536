"""Reader for the Google Speech Commands layout (works unchanged on the real v2 download).

Layout: one folder per word holding ``<speaker>_nohash_<n>.wav``; ``validation_list.txt`` and
``testing_list.txt`` name the files of those splits (relative paths); every other file is train.
Without the lists, files are split by a hash of the speaker id exactly as the dataset's README
describes (10% validation, 10% test). ``_background_noise_`` holds long noise recordings; when the
labels include ``_silence_`` and there is no ``_silence_`` folder, silence clips are cut from them.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.core.errors import DataError
from edgekd.data import BACKGROUND_NOISE, SILENCE, UNKNOWN
from edgekd.runtime.wav import load_audio

__all__ = ["Clip", "SpeechCommands", "SPLITS", "which_split"]

SPLITS = ("train", "validation", "test", "all")
_MAX_NUM_WAVS_PER_CLASS = 2**27 - 1


@dataclass(frozen=True)
class Clip:
    """One labelled example: a file, or a slice of a long noise file (``offset``/``length`` in samples)."""

    path: Path
    label: str
    offset: int = 0
    length: int = 0
    gain: float = 1.0

    def load(self, sample_rate: int) -> np.ndarray:
        x = load_audio(self.path, sample_rate)
        if self.length:
            x = x[self.offset : self.offset + self.length]
        return (x * np.float32(self.gain)).astype(np.float32)


def which_split(relpath: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """The Speech Commands README's hash split by speaker id."""
    base = os.path.basename(relpath)
    speaker = re.sub(r"_nohash_.*$", "", base)
    h = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    pct = (h % (_MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_NUM_WAVS_PER_CLASS)
    if pct < validation_percentage:
        return "validation"
    if pct < validation_percentage + testing_percentage:
        return "test"
    return "train"


class SpeechCommands:
    """A Speech Commands-layout folder, mapped onto a model's labels."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such data folder; give a Speech Commands-layout folder")
        self.folders = sorted(
            d.name for d in self.root.iterdir() if d.is_dir() and d.name != BACKGROUND_NOISE and not d.name.startswith(".")
        )
        if not self.folders:
            raise DataError(f"{self.root}: no label folders found; expected one folder of WAVs per word")
        self._lists = {s: self._read_list(f"{s}_list.txt") for s in ("validation", "testing")}
        self.has_split_lists = any(v is not None for v in self._lists.values())

    def _read_list(self, name: str) -> set[str] | None:
        p = self.root / name
        if not p.is_file():
            return None
        return {ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()}

    def split_of(self, rel: str) -> str:
        if not self.has_split_lists:
            return which_split(rel)
        if self._lists["validation"] and rel in self._lists["validation"]:
            return "validation"
        if self._lists["testing"] and rel in self._lists["testing"]:
            return "test"
        return "train"

    def background_noise_files(self) -> list[Path]:
        d = self.root / BACKGROUND_NOISE
        return sorted(d.glob("*.wav")) if d.is_dir() else []

    def clips(self, labels: tuple[str, ...], split: str = "all", *, sample_rate: int = 16000, seed: int = 0) -> list[Clip]:
        """Every clip of ``split`` labelled with one of ``labels`` (other words map to ``_unknown_``)."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        missing = [lab for lab in labels if lab not in (UNKNOWN, SILENCE) and lab not in self.folders]
        if missing:
            raise DataError(
                f"{self.root}: no folder for label(s) {', '.join(missing)}; the data does not match the model's labels"
            )
        out: list[Clip] = []
        for folder in self.folders:
            if folder in labels:
                label = folder
            elif folder in (UNKNOWN, SILENCE):
                continue  # a special folder the model does not have
            elif UNKNOWN in labels:
                label = UNKNOWN
            else:
                continue
            for wav in sorted((self.root / folder).glob("*.wav")):
                rel = f"{folder}/{wav.name}"
                if split == "all" or self.split_of(rel) == split:
                    out.append(Clip(wav, label))
        if SILENCE in labels and SILENCE not in self.folders:
            out.extend(self._silence_from_noise(split, len(out), sample_rate, seed))
        if not out:
            raise DataError(f"{self.root}: no WAV files for split {split!r}")
        return out

    def _silence_from_noise(self, split: str, n_other: int, sample_rate: int, seed: int) -> list[Clip]:
        files = self.background_noise_files()
        if not files:
            raise DataError(
                f"{self.root}: the model has a {SILENCE} label but the data has neither a {SILENCE} nor a "
                f"{BACKGROUND_NOISE} folder"
            )
        rng = np.random.default_rng(seed + SPLITS.index(split))
        n = max(1, n_other // 11)
        clips = []
        lengths = {f: load_audio(f, sample_rate).shape[0] for f in files}
        for _ in range(n):
            f = files[int(rng.integers(len(files)))]
            length = min(sample_rate, lengths[f])
            off = int(rng.integers(0, max(1, lengths[f] - length)))
            clips.append(Clip(f, SILENCE, off, length, float(rng.uniform(0.0, 1.0))))
        return clips
