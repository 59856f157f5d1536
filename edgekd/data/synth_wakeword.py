"""Wake-word material synthesized with espeak-ng: a labelled clip set, running speech, held-out positives.

- ``wakeword_config``: a Speech Commands-layout set whose one keyword is the phrase (folder ``hey_jarvis``)
  and whose ``_unknown_`` words are confusable phrases ("hey travis", "hey marvin", "jarvis", ...) plus
  ordinary words; voices are split by variant, so validation and test speakers are never trained on.
- ``speech_stream``: minutes to hours of running speech (random sentences, some confusables, no phrase)
  from one split's voices, with pauses and a noise floor: negatives (test voices) or an unlabelled
  transfer set (train voices) that only the teacher labels.
- ``speech_windows``: one-second windows cut from such running speech, as known-negative training clips.
- ``positive_files``: one WAV per phrase (noise, phrase, noise) by held-out voices, with a DCASE tsv.
- ``engine_clips``: training clips of the phrase, or of confusables and words, by another TTS engine.

Other engines speak through the voice bank (``edgekd.data.voices``) with its split by person (``ENGINE_VOICES``):
flite trains on awb, slt and kal16 and holds out rms; festival trains on kal and slt and holds out ked.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgekd.data.augment import colored_noise
from edgekd.data.synth_kws import OTHER_WORDS, SAMPLE_RATE, SynthKwsConfig, _trim_silence, split_variants
from edgekd.runtime.wav import resample, write_wav

__all__ = ["CONFUSABLES", "SENTENCE_WORDS", "phrase_confusables", "ENGINES", "ENGINE_VOICES",
           "wakeword_config", "speech_stream", "speech_windows", "positive_files", "engine_clips", "heldout_engines"]

CONFUSABLES = ("hey travis", "hey marvin", "jarvis", "hey", "hey jeeves", "harvest", "hey service", "jar of this", "hey darling",
               "okay jarvis", "hey mavis", "car keys")
SENTENCE_WORDS = OTHER_WORDS + ("the", "a", "to", "and", "we", "can", "it", "is", "was", "for", "on", "with", "they", "at", "this",
                                 "weather", "today", "please", "music", "light", "kitchen", "door", "open", "close", "water", "time")


def phrase_confusables(phrases: tuple[str, ...], n: int = 24, *, edits: bool = True) -> tuple[str, ...]:
    """Confusable texts for a set of phrases: the hand-made list measured for "hey jarvis" (the wake-word study's),
    else ``n`` per phrase generated from its phonemes (``edgekd.data.confusables``), never one of the phrases.
    ``edits=False`` leaves out the one-letter edits ("jomputer"): training negatives, but not words anyone says, and
    to espeak-ng often close to the phrase, so evaluation speech does not plant them (the same list
    otherwise, in the same order)."""
    if phrases == ("hey jarvis",):
        return CONFUSABLES
    from edgekd.data.confusables import confusables

    out: dict[str, None] = {}
    for ph in phrases:
        for c in confusables(ph, n=n, exclude=[o for o in phrases if o != ph]):
            if edits or c.kind != "edit":
                out.setdefault(c.text)
    return tuple(out)


def wakeword_config(phrase: str = "hey jarvis", per_word: int = 600, seed: int = 0, workers: int = 2,
                    engines: tuple[tuple[str, float], ...] = (("espeak", 1.0),), phrases: tuple[str, ...] | None = None,
                    confusable_clips: int = 0) -> SynthKwsConfig:
    """The clip set: the phrase (or each of ``phrases``, a command set) as a keyword, its confusables and other words
    as ``_unknown_`` (2 x ``per_word`` per phrase, shared evenly; ``confusable_clips`` more of each confusable people
    say on top: not of the one-letter edits, whose extra clips taught "smart mirror" to reject real speakers); spoken
    by the voice bank's ``engines`` (espeak alone by default: the recipe the wake-word study measured)."""
    keywords = phrases or (phrase,)
    confusables = tuple(w for w in phrase_confusables(keywords) if w not in keywords)
    said = set(phrase_confusables(keywords, edits=False))
    others = tuple(w for w in confusables + OTHER_WORDS if w not in keywords)
    return replace(SynthKwsConfig(), keywords=keywords, other_words=others, per_word=per_word, unknown_total=2 * per_word * len(keywords),
                   silence_total=max(1, per_word // 2), seed=seed, workers=workers, engines=engines,
                   word_clips=tuple((w, confusable_clips) for w in confusables if w in said) if confusable_clips > 0 else ())


def _voices(split: str, seed: int) -> list[str]:
    from edgekd.data.voices.espeak import list_variants

    return sorted(v for v, s in split_variants(list_variants(), replace(SynthKwsConfig(), seed=seed)).items() if s == split)


def _say(eng, text: str, rng: np.random.Generator, voices: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    from edgekd.data.voices.espeak import ACCENTS

    pcm = eng.synth(text, str(rng.choice(ACCENTS)), str(rng.choice(voices)), rate_wpm=int(rng.integers(130, 220)),
                    pitch=int(rng.integers(20, 80)), pitch_range=int(rng.integers(20, 80)))
    x = resample(pcm.astype(np.float32) / 32768.0, eng.sample_rate, SAMPLE_RATE)
    x = _trim_silence(x, before=0, end=1)
    return (x * np.float32(rng.uniform(0.2, 0.8) / (np.max(np.abs(x)) + 1e-9))).astype(np.float32)


def speech_stream(seconds: float, *, split: str = "test", seed: int = 0, phrase: str = "hey jarvis", confusable_rate: float = 0.1,
                  engine: str = "espeak", confusables: tuple[str, ...] | None = None) -> np.ndarray:
    """Running speech without ``phrase``: random sentences, a confusable now and then (``confusables``, default the
    "hey jarvis" list), pauses, a noise floor; spoken by ``split``'s voices of ``engine``."""
    from edgekd.data.voices.espeak import Espeak

    _check_engine(engine, ENGINES)
    rng = np.random.default_rng(seed)
    voices = _voices(split, 0)
    eng = Espeak()
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n, dtype=np.float32)
    pos = int(rng.uniform(0.2, 1.0) * SAMPLE_RATE)
    while pos < n:
        if rng.random() < confusable_rate:
            text = str(rng.choice([c for c in (confusables or CONFUSABLES) if c != phrase]))
        else:
            text = " ".join(str(w) for w in rng.choice(SENTENCE_WORDS, size=int(rng.integers(3, 12))))
        x = (_say(eng, text, rng, voices) if engine == "espeak" else _say_other_engine(engine, text, rng, split))[: n - pos]
        out[pos : pos + x.shape[0]] += x
        pos += x.shape[0] + int(rng.uniform(0.1, 1.5) * SAMPLE_RATE)
    floor = colored_noise(n, float(rng.integers(0, 3)), rng) * np.float32(10 ** (rng.uniform(-50, -35) / 20))
    return (out + floor).astype(np.float32)


ENGINES = ("espeak", "flite", "festival", "kokoro", "piper")


def speech_windows(out_dir: Path, n: int, *, seed: int = 0, phrase: str = "hey jarvis", confusables: tuple[str, ...] | None = None,
                   confusable_rate: float = 0.15, split: str = "train") -> list[Path]:
    """``n`` one-second WAVs cut back to back from running speech without ``phrase`` (``speech_stream``: ``split``'s
    voices, ``confusables`` now and then), each holding speech (peak >= 0.1; pauses alone are skipped): words cut
    anywhere, as a detector streaming speech sees them. Known negatives: a wake-word clip set labels them ``_unknown_``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    k = 0
    while len(out) < n:
        x = speech_stream(1.3 * (n - len(out)) + 2.0, split=split, seed=seed * 1000 + k, phrase=phrase, confusable_rate=confusable_rate,
                          confusables=confusables)
        for w in x[: x.shape[0] // SAMPLE_RATE * SAMPLE_RATE].reshape(-1, SAMPLE_RATE):
            if len(out) < n and float(np.max(np.abs(w))) >= 0.1:
                path = out_dir / f"speech_{len(out):05d}.wav"
                write_wav(path, w, SAMPLE_RATE)
                out.append(path)
        k += 1
    return out


def engine_voices(engine: str) -> dict[str, tuple[str, ...]]:
    """The voice bank's voices of ``engine`` by split (an engine without a split's voices cannot speak for it)."""
    from edgekd.data.voices.bank import get_engine

    out: dict[str, list[str]] = {}
    for v in get_engine(engine).voices(0):
        out.setdefault(v.split, []).append(v.name)
    return {s: tuple(vs) for s, vs in out.items()}


class _EngineVoices(dict):  # type: ignore[type-arg]
    """``ENGINE_VOICES[engine][split]``: read from the voice bank on first use (flite and festival share persons)."""

    def __missing__(self, engine: str) -> dict[str, tuple[str, ...]]:
        self[engine] = engine_voices(engine)
        return self[engine]


ENGINE_VOICES: dict[str, dict[str, tuple[str, ...]]] = _EngineVoices()


def _check_engine(engine: str, allowed: tuple[str, ...]) -> None:
    from edgekd.core.errors import ConfigError

    if engine not in allowed:
        raise ConfigError(f"engine {engine!r}: give one of {', '.join(allowed)}")


def _say_other_engine(engine: str, text: str, rng: np.random.Generator, split: str = "test") -> np.ndarray:
    """``text`` from another engine of the voice bank by one of ``split``'s voices, slowed or sped up a little."""
    from edgekd.core.errors import ConfigError
    from edgekd.data.voices.bank import find_voice, get_engine, synthesize

    reason = get_engine(engine).available()
    if reason is not None:
        raise ConfigError(f"{engine} cannot run here: {reason}")
    voices = ENGINE_VOICES[engine].get(split)
    if not voices:
        raise ConfigError(f"{engine} has no {split} voices (it speaks for: {', '.join(ENGINE_VOICES[engine])}); choose another engine")
    voice = find_voice(engine, str(rng.choice(voices)))
    rate = float(rng.uniform(0.77, 1.25))
    pitch = float(rng.uniform(0.8, 1.25)) if engine == "flite" else 1.0
    x = _trim_silence(synthesize(text, voice, rate, pitch), before=0, end=1)
    return (x * np.float32(rng.uniform(0.2, 0.8) / (np.max(np.abs(x)) + 1e-9))).astype(np.float32)


def heldout_engines(split: str, engines: Sequence[str] = ENGINES) -> tuple[str, ...]:
    """The engines among ``engines`` that can speak for ``split`` here (espeak-ng always; another engine when it is
    installed and the voice bank holds voices of it for that split), espeak-ng first."""
    from edgekd.data.voices.bank import get_engine

    out = ["espeak"]
    for e in engines:
        if e != "espeak" and e in ENGINES and get_engine(e).available() is None and ENGINE_VOICES[e].get(split):
            out.append(e)
    return tuple(dict.fromkeys(out))


def engine_clips(clips_dir: Path, n: int, *, engine: str = "flite", words: tuple[str, ...] = ("hey jarvis",), seed: int = 0,
                 split: str = "train") -> list[Path]:
    """Add ``n`` one-second training clips by another engine's ``split`` voices to a Speech Commands folder from
    ``synth_kws`` (files not in the validation/testing lists are training clips), cycling through ``words``, each
    into its own folder (``hey jarvis`` -> ``hey_jarvis/flite_00000.wav``): the phrase as positives, or confusables
    and other words, which the loader maps to ``_unknown_``."""
    from edgekd.data.augment import fit_to_length

    _check_engine(engine, ENGINES[1:])
    rng = np.random.default_rng(seed)
    out: list[Path] = []
    for i in range(n):
        word = words[i % len(words)]
        folder = clips_dir / word.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        x = fit_to_length(_say_other_engine(engine, word, rng, split), SAMPLE_RATE, rng)
        x = x * np.float32(rng.uniform(0.25, 0.95) / (np.max(np.abs(x)) + 1e-9))
        path = folder / f"{engine}_{i:05d}.wav"
        write_wav(path, x.astype(np.float32), SAMPLE_RATE)
        out.append(path)
    return out


def positive_files(out_dir: Path, n: int, *, phrase: str = "hey jarvis", label: str = "hey_jarvis", split: str = "test", seed: int = 0,
                   engine: str | Sequence[str] = "espeak") -> Path:
    """``n`` WAVs, each: 0.5-1.5 s of noise, the phrase, 1.5 s of noise; returns the annotation tsv written beside them.
    ``engine="flite"`` or ``"festival"`` speaks with another TTS engine's voices; several engines take turns (clip ``i``
    by ``engine[i % len(engine)]``)."""
    from edgekd.data.voices.espeak import Espeak

    engines = (engine,) if isinstance(engine, str) else tuple(engine)
    if not engines:
        raise ValueError("positive_files: give at least one engine")
    for e in engines:
        _check_engine(e, ENGINES)

    rng = np.random.default_rng(seed)
    voices = _voices(split, 0)
    eng = Espeak()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        e = engines[i % len(engines)]
        x = _say(eng, phrase, rng, voices) if e == "espeak" else _say_other_engine(e, phrase, rng, split)
        lead = int(rng.uniform(0.5, 1.5) * SAMPLE_RATE)
        audio = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(int(1.5 * SAMPLE_RATE), np.float32)])
        audio += colored_noise(audio.shape[0], float(rng.integers(0, 3)), rng) * np.float32(10 ** (rng.uniform(-50, -30) / 20))
        name = f"pos_{i:04d}.wav"
        write_wav(out_dir / name, audio, SAMPLE_RATE)
        rows.append((name, f"{lead / SAMPLE_RATE:.3f}", f"{(lead + x.shape[0]) / SAMPLE_RATE:.3f}", label))
    tsv = out_dir.parent / f"{out_dir.name}.tsv"
    with tsv.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["filename", "onset", "offset", "event_label"])
        w.writerows(rows)
    return tsv
