"""The voice bank: one interface over every installed speech synthesizer, voices split by whole speaker.

Each engine is a small adapter (``kokoro.py``, ``piper.py``, ``espeak.py``, ``flite.py``, ``festival.py``) with

- ``available() -> str | None``: ``None`` when it can run here, else the one-line reason it cannot;
- ``voices(seed) -> list[Voice]``: every voice it has, each assigned to train / validation / test;
- ``synthesize(text, voice, rate, pitch) -> float32 mono at 16 kHz``.

A ``Voice`` names its speaker ``components`` (a Kokoro blend has two or three): no component is ever in two
splits, so a held-out speaker is never heard in training, not even inside a blend. Engines load lazily and
once per process (Kokoro's model is 92 MB): parallelise with processes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.units import SAMPLE_RATE
from edgekd.runtime.wav import resample

__all__ = ["ENGINE_NAMES", "SAMPLE_RATE", "SPLITS", "Voice", "VoiceEngine", "get_engine", "available_engines", "parse_engines",
           "voice_split", "synthesize", "hash_split", "to_16k", "find_voice", "wav_from_command"]

SPLITS = ("train", "validation", "test")
# Every engine the bank knows, in the order of its default weights below.
ENGINE_NAMES = ("kokoro", "piper", "espeak", "flite", "festival")
# Share of clips per engine when all are enabled (renormalised over the enabled ones): the neural voices sound
# most like people (Kokoro is also the slowest, ~0.5 s per word per core), espeak has the most speakers.
DEFAULT_WEIGHTS = {"kokoro": 3.0, "piper": 1.0, "espeak": 3.0, "flite": 1.0, "festival": 1.0}


@dataclass(frozen=True)
class Voice:
    """One speaker of one engine. ``name`` is what the engine takes; ``components`` the persons inside it, named
    across engines (flite's and festival's ``cmu:slt`` are one person), so no person is in two splits."""

    engine: str
    name: str
    split: str
    components: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}"

    @property
    def speakers(self) -> tuple[str, ...]:
        return self.components or (self.name,)


class VoiceEngine(Protocol):
    name: str

    def available(self) -> str | None: ...

    def voices(self, seed: int = 0) -> list[Voice]: ...

    def synthesize(self, text: str, voice: Voice, rate: float = 1.0, pitch: float = 1.0) -> np.ndarray: ...


def hash_split(name: str, seed: int, validation_fraction: float, test_fraction: float) -> str:
    """A stable split of one voice name: the same name and seed always land in the same split."""
    h = int(hashlib.sha1(f"{seed}:{name}".encode()).hexdigest(), 16) % 10000 / 10000.0
    return "test" if h < test_fraction else "validation" if h < test_fraction + validation_fraction else "train"


def to_16k(x: np.ndarray, sample_rate: int, text: str, engine: str) -> np.ndarray:
    """Float32 mono at 16 kHz; an engine that returned silence for ``text`` is an error, not a clip."""
    y = np.asarray(x, dtype=np.float32).reshape(-1)
    if y.dtype.kind != "f":
        y = y.astype(np.float32)
    y = resample(y, int(sample_rate), SAMPLE_RATE) if sample_rate != SAMPLE_RATE else y
    if y.shape[0] < SAMPLE_RATE // 50 or not np.isfinite(y).all() or float(np.max(np.abs(y))) < 1e-4:
        raise ConfigError(f"{engine} could not say {text!r} (no audio came out); give words it can pronounce")
    return y.astype(np.float32)


_ENGINES: dict[str, VoiceEngine] = {}


def get_engine(name: str) -> VoiceEngine:
    """The process's engine ``name`` (created on first use)."""
    if name not in ENGINE_NAMES:
        raise ConfigError(f"unknown voice engine {name!r}; choose from {', '.join(ENGINE_NAMES)}")
    if name not in _ENGINES:
        if name == "kokoro":
            from edgekd.data.voices.kokoro import KokoroEngine as cls
        elif name == "piper":
            from edgekd.data.voices.piper import PiperEngine as cls  # type: ignore[assignment]
        elif name == "espeak":
            from edgekd.data.voices.espeak import EspeakEngine as cls  # type: ignore[assignment]
        elif name == "flite":
            from edgekd.data.voices.flite import FliteEngine as cls  # type: ignore[assignment]
        else:
            from edgekd.data.voices.festival import FestivalEngine as cls  # type: ignore[assignment]
        _ENGINES[name] = cls()
    return _ENGINES[name]


def available_engines() -> dict[str, str | None]:
    """``{engine: None if it runs here else the reason it cannot}`` for every engine the bank knows."""
    return {n: get_engine(n).available() for n in ENGINE_NAMES}


def parse_engines(spec: str | None) -> dict[str, float]:
    """``"kokoro:3,espeak,flite"`` -> ``{engine: weight}``; ``None``/``""``/``"all"``: every installed engine with its
    default weight (a notice names the ones skipped). A named engine that is not installed is an error."""
    import sys

    if not spec or spec.strip() == "all":
        out = {}
        for name, reason in available_engines().items():
            if reason is None:
                out[name] = DEFAULT_WEIGHTS[name]
            else:
                print(f"notice: voice engine {name} skipped: {reason}", file=sys.stderr)
        if not out:
            raise ConfigError("no voice engine is installed; run: pip install \"edgekd[train]\"")
        return out
    out = {}
    for part in spec.split(","):
        name, _, w = part.strip().partition(":")
        if name not in ENGINE_NAMES:
            raise ConfigError(f"unknown voice engine {name!r} in --engines; choose from {', '.join(ENGINE_NAMES)}")
        try:
            weight = float(w) if w else DEFAULT_WEIGHTS[name]
        except ValueError:
            raise ConfigError(f"--engines: weight {w!r} of {name} is not a number (e.g. kokoro:3,espeak:1)") from None
        if not weight > 0 or not np.isfinite(weight):
            raise ConfigError(f"--engines: weight of {name} must be a positive number")
        reason = get_engine(name).available()
        if reason is not None:
            raise ConfigError(f"voice engine {name} cannot run here: {reason}")
        out[name] = weight
    return out


def voice_split(engines: list[str] | tuple[str, ...], seed: int = 0) -> dict[str, list[Voice]]:
    """``{split: [Voice, ...]}`` over ``engines``; raises if one speaker component lands in two splits."""
    out: dict[str, list[Voice]] = {s: [] for s in SPLITS}
    owner: dict[str, str] = {}
    for name in engines:
        for v in get_engine(name).voices(seed):
            for c in v.speakers:
                prev = owner.setdefault(c, v.split)
                if prev != v.split:
                    raise ConfigError(f"speaker {c} is in both the {prev} and the {v.split} split")
            out[v.split].append(v)
    return out


def find_voice(engine: str, name: str, seed: int = 0) -> Voice:
    """The voice ``name`` of ``engine`` (as its ``voices()`` lists it), or a one-line error naming a few that exist."""
    voices = get_engine(engine).voices(seed)
    for v in voices:
        if v.name == name:
            return v
    some = ", ".join(v.name for v in voices[:6])
    raise ConfigError(f"{engine} has no voice {name!r} (some it has: {some})")


def synthesize(text: str, voice: Voice, rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """``text`` spoken by ``voice`` at ``rate`` (1 = the engine's normal speed, 0.5..2) and ``pitch`` (1 = its normal
    pitch, 0.25..4; engines that cannot move pitch ignore it): float32 mono, 16 kHz."""
    if not text.strip():
        raise ConfigError("nothing to say: the text is empty")
    if not (0.5 <= rate <= 2.0 and 0.25 <= pitch <= 4.0):
        raise ConfigError(f"rate must lie in 0.5..2.0 and pitch in 0.25..4.0 (got {rate}, {pitch})")
    return get_engine(voice.engine).synthesize(text, voice, rate, pitch)


def wav_from_command(argv: list[str], out_flag_index: int | None = None, stdin: bytes | None = None) -> tuple[np.ndarray, int]:
    """Run a command-line synthesizer that writes a WAV file (the path is appended to ``argv``, or put at
    ``out_flag_index``); return its float32 mono samples and rate. A failure is one ``ConfigError`` line."""
    import subprocess
    import tempfile
    from pathlib import Path

    from edgekd.runtime.wav import read_wav

    with tempfile.TemporaryDirectory(prefix="edgekd-voice-") as d:
        wav = str(Path(d) / "x.wav")
        cmd = list(argv)
        if out_flag_index is None:
            cmd.append(wav)
        else:
            cmd.insert(out_flag_index, wav)
        try:
            proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ConfigError(f"{argv[0]} failed: {e}") from None
        if proc.returncode != 0 or not Path(wav).is_file():
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise ConfigError(f"{argv[0]} failed (exit {proc.returncode}): {err[-1] if err else 'no output'}")
        audio = read_wav(wav)
    return audio.samples.astype(np.float32), audio.sample_rate
