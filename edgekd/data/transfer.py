"""The transfer set: unlabelled 1 s windows a teacher labels for its student (``edgekd data transfer``).

Windows of running speech by the voice bank's training voices (every engine asked for, sentences of everyday and
command-like words, pauses, a noise floor), of real background recordings from Debian's sound packages and coloured
noise, and of any folder of the user's own WAVs (``extra``, cut with a 0.5 s hop). Written in the Speech Commands
layout with one folder, ``_transfer_``, so the feature machinery (augmented views, caches, the speech-embedding
features) reads it like any data; ``transfer.tsv`` says where every window came from. The folder is built under
``.OUT.partial`` and renamed when complete. No label is written: the teacher's logits are the only targets.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.units import CLIP_SAMPLES, SAMPLE_RATE

__all__ = ["TRANSFER", "build_transfer", "SPEECH_SHARE"]

TRANSFER = "_transfer_"
SPEECH_SHARE = 0.8  # the rest: background recordings and coloured noise


def _windows(x: np.ndarray, hop: int) -> list[np.ndarray]:
    return [x[i : i + CLIP_SAMPLES] for i in range(0, x.shape[0] - CLIP_SAMPLES + 1, hop)]


def _speech(engine: str, seconds: float, seed: int) -> list[np.ndarray]:
    from edgekd.data.synth_wakeword import speech_stream

    out: list[np.ndarray] = []
    done, k = 0.0, 0
    while done < seconds:  # one-minute streams, each with its own seed: more voices than one long stream
        n = min(60.0, seconds - done)
        out += _windows(speech_stream(max(n, 1.0), split="train", seed=seed * 1000 + k, phrase="", confusable_rate=0.0, engine=engine), CLIP_SAMPLES)
        done += n
        k += 1
    return out


def _noise(n: int, seed: int) -> list[np.ndarray]:
    from edgekd.data.augment import colored_noise
    from edgekd.data.rooms import background_recordings

    rng = np.random.default_rng(seed)
    recs = [r for r in background_recordings(seed=seed) if r.shape[0] >= CLIP_SAMPLES]
    out = []
    for _ in range(n):
        if recs and rng.random() < 0.7:
            r = recs[int(rng.integers(len(recs)))]
            off = int(rng.integers(0, r.shape[0] - CLIP_SAMPLES + 1))
            x = r[off : off + CLIP_SAMPLES] * np.float32(10 ** (rng.uniform(-30, 0) / 20))
        else:
            x = colored_noise(CLIP_SAMPLES, float(rng.integers(0, 3)), rng) * np.float32(10 ** (rng.uniform(-50, -15) / 20))
        out.append(x.astype(np.float32))
    return out


def _extra(folder: Path) -> list[tuple[str, np.ndarray]]:
    from edgekd.runtime.wav import load_audio

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav")
    if not files:
        raise ConfigError(f"--extra {folder}: no .wav files in it; give a folder of your own recordings")
    out = []
    for f in files:
        x = load_audio(f, SAMPLE_RATE)
        if x.shape[0] < CLIP_SAMPLES:
            x = np.pad(x, (0, CLIP_SAMPLES - x.shape[0]))
        out += [(str(f.relative_to(folder)), w) for w in _windows(x, CLIP_SAMPLES // 2)]
    return out


def build_transfer(
    out: str | os.PathLike[str],
    minutes: float,
    *,
    engines: dict[str, float] | None = None,
    extra: list[Path] | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write ``minutes`` of generated windows (speech of ``engines``, by weight, and noise) plus every window of
    ``extra`` folders to ``out``; returns the summary also written to ``out/transfer_meta.json``."""
    from edgekd.runtime.wav import write_wav

    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists; give a new folder (a transfer set is written once)")
    for d in extra or []:
        if not d.is_dir():
            raise ConfigError(f"--extra {d}: no such folder")
    engines = engines or {"espeak": 1.0}
    total = int(round(minutes * 60))
    n_speech = int(round(total * SPEECH_SHARE))
    weights = np.array(list(engines.values()), dtype=np.float64)
    share = np.floor(n_speech * weights / weights.sum()).astype(int)
    share[0] += n_speech - int(share.sum())
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / TRANSFER).mkdir(parents=True)
    rows: list[tuple[str, str, str]] = []
    todo = total  # extra windows are added to the count once known

    def put(x: np.ndarray, source: str, origin: str) -> None:
        name = f"{source}-{len(rows):06d}.wav"
        write_wav(tmp / TRANSFER / name, x, SAMPLE_RATE)
        rows.append((f"{TRANSFER}/{name}", source, origin))
        if progress:
            progress(len(rows), todo)

    try:
        for k, (engine, n) in enumerate(zip(engines, share, strict=True)):
            for w in _speech(engine, float(n), seed + k)[: int(n)]:
                put(w, "speech", engine)
        for w in _noise(total - len(rows), seed):
            put(w, "noise", "debian recordings / coloured noise")
        for d in extra or []:
            windows = _extra(d)
            todo += len(windows)
            for name, w in windows:
                put(w, "extra", f"{d}/{name}")
        (tmp / "transfer.tsv").write_text("file\tsource\torigin\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows))
        meta = {"format": "edgekd-transfer-1", "windows": len(rows), "minutes_generated": minutes,
                "engines": engines, "extra": [str(d) for d in extra or []], "seed": seed,
                "by_source": {s: sum(1 for r in rows if r[1] == s) for s in ("speech", "noise", "extra")}}
        (tmp / "transfer_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta
