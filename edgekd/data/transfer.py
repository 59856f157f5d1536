"""The transfer set: unlabelled 1 s windows a teacher labels for its student (``edgekd data transfer``).

Windows of running speech by the voice bank's training voices (every engine asked for, sentences of everyday and
command-like words, pauses, a noise floor), of real background recordings from Debian's sound packages and coloured
noise, of a wake phrase's training clips placed, warped and overlaid the way a detector meets them (``phrases``: the
teacher says how much of the phrase each window still holds), and of any folder of the user's own WAVs (``extra``, cut
with a 0.5 s hop). Written in the Speech Commands
layout with one folder, ``_transfer_``, so the feature machinery (augmented views, caches, the speech-embedding
features) reads it like any data; ``transfer.tsv`` says where every window came from. The folder is built under
``.OUT.partial`` and renamed when complete. No label is written: the teacher's logits are the only targets.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.units import CLIP_SAMPLES, SAMPLE_RATE

__all__ = ["TRANSFER", "build_transfer", "phrase_windows", "with_phrase_windows", "SPEECH_SHARE"]

TRANSFER = "_transfer_"
SPEECH_SHARE = 0.8  # the rest: background recordings and coloured noise
PHRASE_WARP = (0.8, 1.25)  # speed factors of phrase windows: wider than the training views' 0.88-1.12 (new tract lengths)
PHRASE_P_WARP = 0.7
PHRASE_P_PARTIAL = 0.4  # share of phrase windows that may cut off up to half of the phrase (the teacher scores what is left)
PHRASE_P_SPEECH = 0.3  # share laid over running speech, at 3-20 dB below the phrase


@contextmanager
def _partial(out: Path) -> Iterator[Path]:
    """A ``.OUT.partial`` folder to write in: renamed to ``out`` when the block ends, removed if it fails."""
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def phrase_windows(clips: Sequence[Path], n: int, *, speech: Sequence[np.ndarray] = (), seed: int = 0) -> list[np.ndarray]:
    """``n`` one-second windows made from a phrase's training ``clips`` for a teacher to label: each clip trimmed, most
    played faster or slower than any training view (``PHRASE_WARP``), placed anywhere in the window (some cut off by up
    to half), some over a window of ``speech``, then set to a peak of -18..0 dBFS. A student matched to its teacher on
    these learns what the teacher knows near the phrase, where labelled clips are few."""
    from edgekd.data.augment import warp_speed
    from edgekd.runtime.wav import load_audio

    if not clips:
        raise ConfigError("phrase windows need the phrase's training clips; none were given")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = load_audio(clips[int(rng.integers(len(clips)))], SAMPLE_RATE)
        on = np.flatnonzero(np.abs(x) > 0.01 * (np.max(np.abs(x)) + 1e-9))
        x = x[on[0] : on[-1] + 1] if on.size else x
        if rng.random() < PHRASE_P_WARP:
            x = warp_speed(x, float(rng.uniform(*PHRASE_WARP)))
        n_x = x.shape[0]
        if rng.random() < PHRASE_P_PARTIAL:
            off = int(rng.uniform(-0.5 * n_x, CLIP_SAMPLES - 0.5 * n_x))
        else:
            off = int(rng.uniform(min(0, CLIP_SAMPLES - n_x), max(0, CLIP_SAMPLES - n_x)))
        w = np.zeros(CLIP_SAMPLES, np.float32)
        a, b = max(0, off), min(CLIP_SAMPLES, off + n_x)
        if b > a:
            w[a:b] = x[a - off : b - off]
        if speech and rng.random() < PHRASE_P_SPEECH:
            s = speech[int(rng.integers(len(speech)))]
            w = w + s * np.float32(np.sqrt((np.mean(w**2) + 1e-10) / ((np.mean(s**2) + 1e-10) * 10 ** (rng.uniform(3, 20) / 10))))
        out.append((w * np.float32(10 ** (rng.uniform(-18, 0) / 20) / (np.max(np.abs(w)) + 1e-9))).astype(np.float32))
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
    phrases: dict[str, Sequence[Path]] | None = None,
    per_phrase: int = 0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write ``minutes`` of generated windows (speech of ``engines``, by weight, and noise), ``per_phrase`` phrase
    windows (``phrase_windows``) for each ``phrases`` entry (name -> its training clips) and every window of ``extra``
    folders to ``out``; returns the summary also written to ``out/transfer_meta.json``."""
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
    rows: list[tuple[str, str, str]] = []
    phrases = phrases if per_phrase > 0 and phrases else {}
    todo = total + per_phrase * len(phrases)  # extra windows are added to the count once known

    def put(x: np.ndarray, source: str, origin: str) -> None:
        name = f"{source}-{len(rows):06d}.wav"
        write_wav(tmp / TRANSFER / name, x, SAMPLE_RATE)
        rows.append((f"{TRANSFER}/{name}", source, origin))
        if progress:
            progress(len(rows), todo)

    with _partial(out) as tmp:
        (tmp / TRANSFER).mkdir(parents=True)
        speech: list[np.ndarray] = []
        for k, (engine, n) in enumerate(zip(engines, share, strict=True)):
            for w in _speech(engine, float(n), seed + k)[: int(n)]:
                put(w, "speech", engine)
                speech.append(w)
        for w in _noise(total - len(rows), seed):
            put(w, "noise", "debian recordings / coloured noise")
        for k, (name, clips) in enumerate(phrases.items()):
            for w in phrase_windows(list(clips), per_phrase, speech=speech, seed=seed + 100 + k):
                put(w, "phrase", name)
        for d in extra or []:
            windows = _extra(d)
            todo += len(windows)
            for name, w in windows:
                put(w, "extra", f"{d}/{name}")
        (tmp / "transfer.tsv").write_text("file\tsource\torigin\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows))
        meta = {"format": "edgekd-transfer-1", "windows": len(rows), "minutes_generated": minutes,
                "engines": engines, "extra": [str(d) for d in extra or []], "seed": seed,
                "phrases": {name: per_phrase for name in phrases},
                "by_source": {s: sum(1 for r in rows if r[1] == s) for s in ("speech", "noise", "phrase", "extra")}}
        (tmp / "transfer_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def with_phrase_windows(src: str | os.PathLike[str], out: str | os.PathLike[str], phrases: dict[str, Sequence[Path]], per_phrase: int,
                        *, seed: int = 0) -> dict:
    """A copy of the transfer set ``src`` at ``out`` with ``per_phrase`` phrase windows of each ``phrases`` entry
    appended (over ``src``'s own speech windows), to measure phrase windows on a finished run's transfer set; the
    folder appears when complete. Returns the new ``transfer_meta.json``."""
    from edgekd.runtime.wav import load_audio, write_wav

    src, out = Path(src), Path(out)
    if not (src / "transfer_meta.json").is_file():
        raise ConfigError(f"{src}: not a transfer set (no transfer_meta.json)")
    if out.exists():
        raise ConfigError(f"{out} exists; give a new folder (a transfer set is written once)")
    with _partial(out) as tmp:
        shutil.copytree(src, tmp)
        meta = json.loads((tmp / "transfer_meta.json").read_text())
        tsv = (tmp / "transfer.tsv").read_text().splitlines(keepends=True)
        speech = [load_audio(tmp / line.split("\t")[0], SAMPLE_RATE) for line in tsv[1:] if line.split("\t")[1] == "speech"]
        n = len(tsv) - 1
        for k, (name, clips) in enumerate(phrases.items()):
            for w in phrase_windows(list(clips), per_phrase, speech=speech, seed=seed + 100 + k):
                file = f"phrase-{n:06d}.wav"
                write_wav(tmp / TRANSFER / file, w, SAMPLE_RATE)
                tsv.append(f"{TRANSFER}/{file}\tphrase\t{name}\n")
                n += 1
        (tmp / "transfer.tsv").write_text("".join(tsv))
        by_source = meta.get("by_source", {})
        meta.update(windows=n, phrases={**meta.get("phrases", {}), **{name: per_phrase for name in phrases}},
                    by_source={**by_source, "phrase": by_source.get("phrase", 0) + per_phrase * len(phrases)}, phrase_seed=seed)
        (tmp / "transfer_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta
