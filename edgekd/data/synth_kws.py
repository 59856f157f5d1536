"""``synth_kws``: write a Speech Commands-layout dataset synthesized with espeak-ng.

Keywords and other words are spoken by many accents x voice variants x rates x pitches. Voice
variants are split between train / validation / test, so the test split holds speakers that no
training clip used. ``_silence_`` clips are noise (white/pink/brown, hum, digital silence) and
``_background_noise_`` holds long noise files, as in the real dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from edgekd.data import BACKGROUND_NOISE, KWS12_KEYWORDS, SILENCE
from edgekd.data.augment import colored_noise, fit_to_length
from edgekd.errors import ConfigError
from edgekd.runtime.wav import resample, write_wav

__all__ = ["SynthKwsConfig", "synth_kws", "OTHER_WORDS", "split_variants", "single_threaded_blas"]

_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Worker processes started inside this block use one BLAS thread each (no oversubscription)."""
    saved = {k: os.environ.get(k) for k in _BLAS_ENV}
    os.environ.update({k: "1" for k in _BLAS_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

# The other words of Speech Commands v2, plus a few, for _unknown_.
OTHER_WORDS = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "zero", "one",
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "backward", "forward", "follow",
    "learn", "visual", "yesterday", "north", "often", "goal", "app", "town", "lift", "stock",
)
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class SynthKwsConfig:
    per_word: int = 600
    unknown_total: int = 1200
    silence_total: int = 500
    validation_fraction: float = 0.12
    test_fraction: float = 0.15
    seed: int = 0
    workers: int = 2
    keywords: tuple[str, ...] = KWS12_KEYWORDS
    other_words: tuple[str, ...] = OTHER_WORDS


def split_variants(variants: list[str], cfg: SynthKwsConfig) -> dict[str, str]:
    """Assign each voice variant to one split by a stable hash (test speakers are never trained on)."""
    out = {}
    for v in variants:
        h = int(hashlib.sha1(f"{cfg.seed}:{v}".encode()).hexdigest(), 16) % 10000 / 10000.0
        out[v] = "test" if h < cfg.test_fraction else "validation" if h < cfg.test_fraction + cfg.validation_fraction else "train"
    for split in ("train", "validation", "test"):
        if split not in out.values():
            raise ConfigError(f"no voice variant fell into the {split} split; change --seed or the split fractions")
    return out


@dataclass(frozen=True)
class _Job:
    text: str
    folder: str
    accent: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int
    seed: int
    relpath: str


_ENGINE = None


def _render(job: _Job) -> tuple[str, int]:
    global _ENGINE
    if _ENGINE is None:
        from edgekd.data.espeak import Espeak

        _ENGINE = Espeak()
    pcm = _ENGINE.synth(job.text, job.accent, job.variant, rate_wpm=job.rate, pitch=job.pitch, pitch_range=job.pitch_range)
    x = resample(pcm.astype(np.float32) / 32768.0, _ENGINE.sample_rate, SAMPLE_RATE)
    rng = np.random.default_rng(job.seed)
    x = _trim_silence(x, before=160, end=160)
    x = fit_to_length(x, SAMPLE_RATE, rng)
    x = x * np.float32(rng.uniform(0.25, 0.95) / (np.max(np.abs(x)) + 1e-9))
    return job.relpath, _write(job.relpath, x)


def _trim_silence(x: np.ndarray, before: int, end: int) -> np.ndarray:
    """Cut what lies below 2% of the peak: keep from ``before`` samples ahead of the first loud one to ``end``
    samples past the last loud one (exclusive)."""
    keep = np.flatnonzero(np.abs(x) > 0.02 * (np.max(np.abs(x)) + 1e-9))
    if not keep.size:
        return x
    return x[max(0, keep[0] - before) : keep[-1] + end]


_OUT: Path | None = None


def _init(out: str) -> None:
    global _OUT
    _OUT = Path(out)


def _write(rel: str, x: np.ndarray) -> int:
    assert _OUT is not None
    write_wav(_OUT / rel, x, SAMPLE_RATE)
    return x.shape[0]


def _silence_clip(kind: int, rng: np.random.Generator, n: int) -> np.ndarray:
    if kind == 0:
        return np.zeros(n, dtype=np.float32)
    if kind == 4:  # mains hum with harmonics
        t = np.arange(n) / SAMPLE_RATE
        f0 = rng.choice([50.0, 60.0])
        x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 5)).astype(np.float32)
        x += 0.1 * colored_noise(n, 1.0, rng)
    else:
        x = colored_noise(n, float(kind - 1), rng)
    return (x * np.float32(10.0 ** (rng.uniform(-60.0, -18.0) / 20.0))).astype(np.float32)


def _plan(cfg: SynthKwsConfig, variants: dict[str, str]) -> tuple[list[_Job], dict[str, list[str]]]:
    from edgekd.data.espeak import ACCENTS

    rng = np.random.default_rng(cfg.seed)
    by_split: dict[str, list[str]] = {s: sorted(v for v, sp in variants.items() if sp == s) for s in ("train", "validation", "test")}
    jobs: list[_Job] = []
    lists: dict[str, list[str]] = {"validation": [], "test": []}
    counters: dict[tuple[str, str], int] = {}

    def add(word: str, folder: str) -> None:
        split = rng.choice(["train", "validation", "test"], p=[1 - cfg.validation_fraction - cfg.test_fraction, cfg.validation_fraction, cfg.test_fraction])
        variant = str(rng.choice(by_split[str(split)]))
        accent = str(rng.choice(ACCENTS))
        speaker = f"{variant}-{accent}".replace("_", "-")
        k = counters.get((folder, speaker), 0)
        counters[(folder, speaker)] = k + 1
        rel = f"{folder}/{speaker}_nohash_{k}.wav"
        jobs.append(_Job(word, folder, accent, variant, int(rng.integers(110, 240)), int(rng.integers(15, 85)),
                         int(rng.integers(10, 90)), int(rng.integers(2**31)), rel))
        if split != "train":
            lists[str(split)].append(rel)

    for w in cfg.keywords:
        for _ in range(cfg.per_word):
            add(w, w.replace(" ", "_"))
    for i in range(cfg.unknown_total):
        w = cfg.other_words[i % len(cfg.other_words)]
        add(w, w.replace(" ", "_"))
    return jobs, lists


def synth_kws(out_dir: str | os.PathLike[str], cfg: SynthKwsConfig = SynthKwsConfig(), progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Write the dataset to ``out_dir`` (which must be empty or absent). Returns clip counts per folder."""
    from edgekd.data.espeak import list_variants

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: folder is not empty; give a new folder (nothing was overwritten)")
    if set(cfg.keywords) & set(cfg.other_words):
        raise ConfigError("a word is both a keyword and an _unknown_ word")
    variants = split_variants(list_variants(), cfg)
    jobs, lists = _plan(cfg, variants)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed + 1)
    _init(str(out))
    # silence and background noise: cheap, made here
    for i in range(cfg.silence_total):
        rel = f"{SILENCE}/noise{i % 5}_nohash_{i}.wav"
        _write(rel, _silence_clip(i % 5, rng, SAMPLE_RATE))
        split = rng.choice(["train", "validation", "test"], p=[1 - cfg.validation_fraction - cfg.test_fraction, cfg.validation_fraction, cfg.test_fraction])
        if split != "train":
            lists[str(split)].append(rel)
    for kind, name in enumerate(["white", "pink", "brown"]):
        _write(f"{BACKGROUND_NOISE}/{name}_noise.wav", 0.3 * colored_noise(SAMPLE_RATE * 30, float(kind), rng) / 4.0)
    done = 0
    total = len(jobs)
    if cfg.workers > 1:
        with single_threaded_blas(), get_context("spawn").Pool(cfg.workers, initializer=_init, initargs=(str(out),)) as pool:
            for _ in pool.imap_unordered(_render, jobs, chunksize=32):
                done += 1
                if progress:
                    progress(done, total)
    else:
        for job in jobs:
            _render(job)
            done += 1
            if progress:
                progress(done, total)
    (out / "validation_list.txt").write_text("\n".join(sorted(lists["validation"])) + "\n", encoding="utf-8")
    (out / "testing_list.txt").write_text("\n".join(sorted(lists["test"])) + "\n", encoding="utf-8")
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.folder] = counts.get(job.folder, 0) + 1
    counts[SILENCE] = cfg.silence_total
    meta = {"generator": "edgekd synth-kws (espeak-ng via espeakng-loader)", "config": asdict(cfg),
            "variant_split": variants, "counts": counts}
    (out / "synth_meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return counts


def synth_keyword_stream(
    words: tuple[str, ...], *, seed: int = 0, gap_s: float = 1.5, variants_split: str = "test", cfg: SynthKwsConfig = SynthKwsConfig()
) -> tuple[np.ndarray, list[dict[str, object]]]:
    """A long clip of ``words`` spoken by held-out voices, ``gap_s`` apart, over light pink noise.

    Returns the audio (16 kHz float32) and the truth: ``[{"label", "onset_ms", "offset_ms"}]``.
    """
    from edgekd.data.espeak import ACCENTS, Espeak, list_variants

    rng = np.random.default_rng(seed)
    held_out = sorted(v for v, s in split_variants(list_variants(), cfg).items() if s == variants_split)
    eng = Espeak()
    pieces: list[np.ndarray] = [np.zeros(int(0.5 * SAMPLE_RATE), dtype=np.float32)]
    truth: list[dict[str, object]] = []
    pos = pieces[0].shape[0]
    for w in words:
        pcm = eng.synth(w, str(rng.choice(ACCENTS)), str(rng.choice(held_out)), rate_wpm=int(rng.integers(140, 200)), pitch=int(rng.integers(30, 70)))
        x = resample(pcm.astype(np.float32) / 32768.0, eng.sample_rate, SAMPLE_RATE)
        x = _trim_silence(x, before=0, end=1)
        x = x * np.float32(0.6 / (np.max(np.abs(x)) + 1e-9))
        truth.append({"label": w, "onset_ms": int(1000 * pos / SAMPLE_RATE), "offset_ms": int(1000 * (pos + x.shape[0]) / SAMPLE_RATE)})
        gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
        pieces += [x, gap]
        pos += x.shape[0] + gap.shape[0]
    audio = np.concatenate(pieces)
    audio = audio + 0.003 * colored_noise(audio.shape[0], 1.0, rng)
    return audio.astype(np.float32), truth
