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
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.units import SAMPLE_RATE
from edgekd.data import BACKGROUND_NOISE, KWS12_KEYWORDS, SILENCE
from edgekd.data.augment import colored_noise, fit_to_length
from edgekd.data.voices.bank import Voice
from edgekd.runtime.wav import resample, write_wav

__all__ = ["SynthKwsConfig", "synth_kws", "OTHER_WORDS", "split_variants", "single_threaded_blas", "resolve_engines", "say"]

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
    # more _unknown_ words, each with its own clip count, planned after the even share of unknown_total (so that the
    # clips planned before them, and the synthesis cache's hits, stay the same)
    word_clips: tuple[tuple[str, int], ...] = ()
    # (engine, weight) pairs of the voice bank; () = every installed engine with its default weight
    engines: tuple[tuple[str, float], ...] = ()


def split_variants(variants: list[str], cfg: SynthKwsConfig) -> dict[str, str]:
    """Assign each espeak voice variant to one split by a stable hash (test speakers are never trained on)."""
    from edgekd.data.voices.bank import hash_split

    out = {v: hash_split(v, cfg.seed, cfg.validation_fraction, cfg.test_fraction) for v in variants}
    for split in ("train", "validation", "test"):
        if split not in out.values():
            raise ConfigError(f"no voice variant fell into the {split} split; change --seed or the split fractions")
    return out


# Rate and pitch ranges per engine (1 = the engine's normal); neural voices sound wrong far from normal speed.
# Rates of the slow engines are rounded to a 0.05 grid so that the synthesis cache is hit across runs.
_RATE = {"espeak": (0.63, 1.37), "flite": (0.75, 1.3), "festival": (0.75, 1.3), "kokoro": (0.8, 1.25), "piper": (0.8, 1.25)}
_PITCH = {"espeak": (0.3, 1.7), "flite": (0.8, 1.25)}
_CACHED = ("kokoro", "piper", "flite", "festival")


@dataclass(frozen=True)
class _Job:
    text: str
    folder: str
    voice: Voice
    rate: float
    pitch: float
    seed: int
    relpath: str


_W: dict[str, object] = {}


def _init(out: str, cache_dir: str | None) -> None:
    """Where this process writes clips and caches utterances (the main process, and each worker through ``_init_worker``)."""
    from edgekd.data.voices.cache import SynthCache

    _W["out"] = Path(out)
    _W["cache"] = SynthCache(cache_dir) if cache_dir else None


def _init_worker(out: str, cache_dir: str | None) -> None:
    """A pool worker: ``_init``, and die with the parent. Never called in the main process: ``die_with_parent`` there
    would tie the user's command to its launching shell (and exit at once under ``setsid nohup``, whose parent is init)."""
    from edgekd.core.procutil import die_with_parent

    die_with_parent()
    _init(out, cache_dir)


def _render_checked(job: _Job) -> tuple[str, int]:
    """``_render`` in a pool worker: an engine error comes back to the parent as one ``ConfigError``."""
    try:
        return _render(job)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - anything else an engine raises: one line in the parent, not a traceback
        raise ConfigError(f"synthesis of {job.text!r} by {job.voice.key} failed: {type(e).__name__}: {e}") from None


def _render_share(jobs: list[_Job], out: str, cache_dir: str | None, messages: Any) -> None:
    """One worker's fixed share of the jobs, in order, in a process of its own: espeak-ng and Piper carry state from
    one utterance to the next, so a clip is the same from run to run only when its process spoke the same utterances
    before it (a pool hands jobs to whichever worker is free). Puts 1 per clip, then None; or an error line."""
    try:
        _init_worker(out, cache_dir)
        for job in jobs:
            _render_checked(job)
            messages.put(1)
        messages.put(None)
    except ConfigError as e:
        messages.put(str(e))
    except Exception as e:  # noqa: BLE001 - the parent says it in one line
        messages.put(f"a synthesis worker failed: {type(e).__name__}: {e}")


def _share_of(job: _Job, workers: int) -> int:
    """The worker that speaks ``job``: by its utterance, so the same utterance twice goes to one worker, which makes
    it and then finds it in the synthesis cache. Two workers racing for it would leave Piper's noise generator at a
    different point in the one that lost (it made the utterance, or found it), and every later Piper clip of that
    worker different."""
    key = f"{job.voice.key}|{job.text}|{job.rate:.3f}|{job.pitch:.3f}"
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:4], "little") % workers


def _render_parallel(order: list[_Job], workers: int, out: str, cache_dir: str | None,
                     progress: Callable[[int, int], None] | None) -> None:
    """``order`` over ``workers`` processes, each taking its share (``_share_of``) in order."""
    ctx = get_context("spawn")
    messages = ctx.Queue()
    with single_threaded_blas():
        shares: list[list[_Job]] = [[] for _ in range(workers)]
        for job in order:
            shares[_share_of(job, workers)].append(job)
        procs = [ctx.Process(target=_render_share, args=(share, out, cache_dir, messages), daemon=True) for share in shares]
        for p in procs:
            p.start()
    try:
        _collect_shares(messages, procs, len(order), progress)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()


def _collect_shares(messages: Any, procs: list[Any], total: int,
                    progress: Callable[[int, int], None] | None) -> None:
    """Read the workers' messages until each has said None; raise ``ConfigError`` on an error line, on a worker that
    died, or on one that ended without its None (twice in a row quiet for 2 s, so a None still in the pipe counts)."""
    import queue

    done = finished = 0
    quiet = 0
    while finished < len(procs):
        try:
            msg = messages.get(timeout=2.0)
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise ConfigError(f"a synthesis worker died (exit code {dead[0]}); run again, or with --workers 1 to see why") from None
            ended = sum(p.exitcode == 0 for p in procs)
            quiet = quiet + 1 if ended > finished else 0
            if quiet >= 2:
                raise ConfigError("a synthesis worker ended without finishing its share; run again, or with --workers 1 to see why") from None
            continue
        quiet = 0
        if msg is None:
            finished += 1
        elif isinstance(msg, str):
            raise ConfigError(msg)
        else:
            done += 1
            if progress:
                progress(done, total)


def say(job_text: str, voice: Voice, rate: float, pitch: float, cache: object | None = None) -> np.ndarray:
    """One utterance from the voice bank (through the synthesis cache for the slow engines), float32 16 kHz."""
    from edgekd.data.voices.bank import synthesize
    from edgekd.data.voices.cache import SynthCache

    if isinstance(cache, SynthCache) and voice.engine in _CACHED:
        return cache.get_or_make(job_text, voice, rate, pitch, lambda: synthesize(job_text, voice, rate, pitch))
    return synthesize(job_text, voice, rate, pitch)


def _render(job: _Job) -> tuple[str, int]:
    x = say(job.text, job.voice, job.rate, job.pitch, _W.get("cache"))
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


def _write(rel: str, x: np.ndarray) -> int:
    out = _W["out"]
    assert isinstance(out, Path)
    write_wav(out / rel, x, SAMPLE_RATE)
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


def resolve_engines(cfg: SynthKwsConfig) -> dict[str, float]:
    """The config's engines with weights (every installed one when it names none)."""
    from edgekd.data.voices.bank import parse_engines

    if not cfg.engines:
        return parse_engines(None)
    return parse_engines(",".join(f"{e}:{w:g}" for e, w in cfg.engines))


def _draw(rng: np.random.Generator, lo_hi: tuple[float, float], grid: bool) -> float:
    x = float(rng.uniform(*lo_hi))
    return round(round(x / 0.05) * 0.05, 2) if grid else round(x, 3)


def _plan(cfg: SynthKwsConfig, engines: dict[str, float]) -> tuple[list[_Job], dict[str, list[str]], dict[str, list[Voice]]]:
    from edgekd.data.voices.bank import voice_split

    rng = np.random.default_rng(cfg.seed)
    voices = voice_split(tuple(engines), cfg.seed)
    by_split: dict[str, dict[str, list[Voice]]] = {s: {} for s in voices}
    for s, vs in voices.items():
        for v in vs:
            by_split[s].setdefault(v.engine, []).append(v)
    for s in ("train", "validation", "test"):
        if not by_split[s]:
            raise ConfigError(f"no voice of {', '.join(engines)} is in the {s} split; add an engine with more voices (e.g. espeak)")
    jobs: list[_Job] = []
    lists: dict[str, list[str]] = {"validation": [], "test": []}
    counters: dict[tuple[str, str], int] = {}
    probs = [1 - cfg.validation_fraction - cfg.test_fraction, cfg.validation_fraction, cfg.test_fraction]

    def add(word: str, folder: str) -> None:
        split = str(rng.choice(["train", "validation", "test"], p=probs))
        names = sorted(by_split[split])
        w = np.array([engines[e] for e in names])
        engine = names[int(rng.choice(len(names), p=w / w.sum()))]
        pool = by_split[split][engine]
        voice = pool[int(rng.integers(len(pool)))]
        grid = engine in _CACHED
        rate = _draw(rng, _RATE[engine], grid)
        pitch = _draw(rng, _PITCH[engine], grid) if engine in _PITCH else 1.0
        if engine == "espeak":  # <variant>-<accent>, as every earlier espeak dataset
            accent, _, variant = voice.name.partition("+")
            speaker = f"{variant}-{accent}".replace("_", "-")
        else:
            speaker = f"{engine}-{hashlib.sha1(voice.key.encode()).hexdigest()[:8]}"
        k = counters.get((folder, speaker), 0)
        counters[(folder, speaker)] = k + 1
        rel = f"{folder}/{speaker}_nohash_{k}.wav"
        jobs.append(_Job(word, folder, voice, rate, pitch, int(rng.integers(2**31)), rel))
        if split != "train":
            lists[split].append(rel)

    for word in cfg.keywords:
        for _ in range(cfg.per_word):
            add(word, word.replace(" ", "_"))
    for i in range(cfg.unknown_total):
        word = cfg.other_words[i % len(cfg.other_words)]
        add(word, word.replace(" ", "_"))
    for word, n in cfg.word_clips:
        for _ in range(n):
            add(word, word.replace(" ", "_"))
    return jobs, lists, voices


def synth_kws(out_dir: str | os.PathLike[str], cfg: SynthKwsConfig = SynthKwsConfig(), progress: Callable[[int, int], None] | None = None,
              *, cache_dir: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Write the dataset to ``out_dir`` (which must be empty or absent). Returns clip counts per folder.

    The folder is written under a temporary name beside it and renamed when complete: an interrupted run leaves
    no half dataset. ``cache_dir``: synthesis cache of the slow engines (reused across runs)."""
    import shutil
    import tempfile

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: folder is not empty; give a new folder (nothing was overwritten)")
    if set(cfg.keywords) & (set(cfg.other_words) | {w for w, _ in cfg.word_clips}):
        raise ConfigError("a word is both a keyword and an _unknown_ word")
    engines = resolve_engines(cfg)
    jobs, lists, voices = _plan(cfg, engines)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as e:
        raise ConfigError(f"{out}: cannot write there ({e.strerror}); give a writable folder") from None
    try:
        counts = _write_all(tmp, cfg, jobs, lists, engines, voices, cache_dir, progress)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def _write_all(out: Path, cfg: SynthKwsConfig, jobs: list[_Job], lists: dict[str, list[str]], engines: dict[str, float],
               voices: dict[str, list[Voice]], cache_dir: str | os.PathLike[str] | None, progress: Callable[[int, int], None] | None
               ) -> dict[str, int]:
    """Every file of the dataset into ``out``; returns clip counts per folder."""
    from edgekd.core.procutil import bounded_workers

    rng = np.random.default_rng(cfg.seed + 1)
    cache = str(cache_dir) if cache_dir else None
    _init(str(out), cache)
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
    workers = bounded_workers(cfg.workers, len(jobs))
    # slow engines first (each worker's share keeps this order)
    order = sorted(jobs, key=lambda j: (j.voice.engine != "kokoro", j.voice.engine == "espeak"))
    if workers > 1:  # a fixed share per worker: the same data from every run with the same --workers
        # espeak-ng in processes of its own: Kokoro and Piper phonemize through the same library, which changes what
        # espeak-ng then says (about 1% of its clips), and they do so only on a cache miss
        espeak = [j for j in order if j.voice.engine == "espeak"]
        for part in ([j for j in order if j.voice.engine != "espeak"], espeak):
            if part:
                base = done
                _render_parallel(part, workers, str(out), cache, (lambda d, _t, b=base: progress(b + d, total)) if progress else None)
                done += len(part)
    else:
        for job in order:
            _render(job)
            done += 1
            if progress:
                progress(done, total)
    (out / "validation_list.txt").write_text("\n".join(sorted(lists["validation"])) + "\n", encoding="utf-8")
    (out / "testing_list.txt").write_text("\n".join(sorted(lists["test"])) + "\n", encoding="utf-8")
    counts: dict[str, int] = {}
    per_engine: dict[str, int] = {}
    for job in jobs:
        counts[job.folder] = counts.get(job.folder, 0) + 1
        per_engine[job.voice.engine] = per_engine.get(job.voice.engine, 0) + 1
    counts[SILENCE] = cfg.silence_total
    meta = {"generator": f"edgekd synth-kws (voice bank: {', '.join(sorted(engines))})", "config": asdict(cfg),
            "engines": engines, "clips_per_engine": per_engine,
            "voice_split": {s: sorted(v.key for v in vs) for s, vs in voices.items()},
            "variant_split": {v.components[0].split(":", 1)[1]: s for s, vs in voices.items() for v in vs if v.engine == "espeak"},
            "counts": counts}
    with open(out / "clips.tsv", "w", encoding="utf-8") as f:  # which voice said each clip (for studies by engine)
        f.write("path\tengine\tvoice\tsplit\trate\tpitch\n")
        split_of = {**{r: "validation" for r in lists["validation"]}, **{r: "test" for r in lists["test"]}}
        for job in jobs:
            f.write(f"{job.relpath}\t{job.voice.engine}\t{job.voice.name}\t{split_of.get(job.relpath, 'train')}\t{job.rate}\t{job.pitch}\n")
    (out / "synth_meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return counts


def synth_keyword_stream(
    words: tuple[str, ...], *, seed: int = 0, gap_s: float = 1.5, variants_split: str = "test", cfg: SynthKwsConfig = SynthKwsConfig()
) -> tuple[np.ndarray, list[dict[str, object]]]:
    """A long clip of ``words`` spoken by held-out voices, ``gap_s`` apart, over light pink noise.

    Returns the audio (16 kHz float32) and the truth: ``[{"label", "onset_ms", "offset_ms"}]``.
    """
    from edgekd.data.voices.espeak import ACCENTS, Espeak, list_variants

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
