"""espeak-ng through ctypes, from the PyPI package ``espeakng-loader`` (no Debian espeak-ng needed).

The library keeps global state: one ``Espeak`` per process; parallelise with processes. Its random generator
(jitter, breath, whisper) is seeded from each utterance's own parameters before it is spoken: unseeded, the same
clip came out different from one run to the next (10 of the 104 clips of the test suite's tiny set, in the same
order with the same seed). What it still carries from one utterance to the next (the waveform generator's state,
which neither a re-initialisation nor a primer clears) makes a clip depend on the utterances its process spoke
before it: the same jobs in the same order give the same audio.
"""

from __future__ import annotations

import ctypes
import hashlib
from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.data.voices.bank import Voice, hash_split, to_16k

__all__ = ["Espeak", "EspeakEngine", "ACCENTS", "list_variants"]

# English accents shipped in espeak-ng's data (lang/gmw).
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _loader():  # type: ignore[no-untyped-def]
    try:
        import espeakng_loader
    except ImportError:
        raise ConfigError('speech synthesis needs espeakng-loader; run: pip install "edgekd[train]"') from None
    return espeakng_loader


def list_variants() -> list[str]:
    """Voice variants that exist in the data (an unknown name would silently fall back to the base voice)."""
    vdir = Path(_loader().get_data_path()) / "voices" / "!v"
    return sorted(p.name for p in vdir.iterdir() if p.is_file() and " " not in p.name)


class _Library:
    """The process's one initialised libespeak-ng: the library keeps one global synthesis callback, so a second
    initialisation (a second ``Espeak`` made later, then freed) would leave the first one calling freed memory."""

    def __init__(self) -> None:
        loader = _loader()
        self.lib = ctypes.CDLL(loader.get_library_path())
        self.chunks: list[np.ndarray] = []

        def _cb(wav, n, _events):  # type: ignore[no-untyped-def]
            if n > 0 and wav:
                self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self.cb = _CALLBACK(_cb)  # kept for the life of the process: the C side holds the pointer
        self.lib.espeak_Initialize.restype = ctypes.c_int
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise ConfigError("espeak-ng failed to initialise (its data folder may be damaged); reinstall espeakng-loader")
        self.sample_rate = int(rate)
        self.lib.espeak_SetSynthCallback(self.cb)
        self.seed = getattr(self.lib, "espeak_ng_SetRandSeed", None)  # espeak-ng >= 1.51
        if self.seed is not None:
            self.seed.argtypes = [ctypes.c_long]
        self.variants = set(list_variants())


_LIBRARY: _Library | None = None


class Espeak:
    """A synthesizer bound to this process (every ``Espeak`` shares the one initialised library).
    ``synth(text, voice, ...)`` returns int16 mono at ``sample_rate``."""

    def __init__(self) -> None:
        global _LIBRARY
        if _LIBRARY is None:
            _LIBRARY = _Library()
        self._shared = _LIBRARY
        self._lib = _LIBRARY.lib
        self._chunks = _LIBRARY.chunks
        self._variants = _LIBRARY.variants
        self.sample_rate = _LIBRARY.sample_rate

    def synth(self, text: str, voice: str, variant: str | None = None, *, rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50) -> np.ndarray:
        if variant is not None and variant not in self._variants:
            raise ConfigError(f"unknown espeak voice variant {variant!r}")
        name = f"{voice}+{variant}" if variant else voice
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise ConfigError(f"espeak-ng has no voice {name!r}")
        self._lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)
        if self._shared.seed is not None:
            key = f"{text}|{name}|{int(rate_wpm)}|{int(pitch)}|{int(pitch_range)}".encode()
            self._shared.seed(int.from_bytes(hashlib.sha1(key).digest()[:4], "little"))
        self._chunks.clear()
        data = text.encode("utf-8")
        self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)

    def phonemes(self, text: str, voice: str = "en-us") -> str:
        """espeak-ng's phoneme mnemonics of ``text`` (stress marks included; one space between clauses)."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ConfigError(f"espeak-ng has no voice {voice!r}")
        fn = self._lib.espeak_TextToPhonemes
        fn.restype = ctypes.c_char_p
        fn.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        buf = ctypes.c_char_p(text.encode("utf-8"))
        keep = buf  # the C side advances the pointer through this buffer
        parts = []
        while buf.value:
            out = fn(ctypes.byref(buf), _ESPEAK_CHARS_UTF8, 0)
            parts.append(out.decode("utf-8", "replace").strip() if out else "")
        del keep
        return " ".join(x for x in parts if x)


# Fractions of espeak's voice variants held out (the split of every earlier edgekd dataset).
VALIDATION_FRACTION = 0.12
TEST_FRACTION = 0.15


class EspeakEngine:
    """The voice-bank adapter: a voice is ``accent+variant`` (8 English accents x ~100 variants); whole variants are
    split between train / validation / test, so a held-out variant is unheard in every accent."""

    name = "espeak"

    def __init__(self) -> None:
        self._espeak: Espeak | None = None

    def available(self) -> str | None:
        try:
            _loader()
        except ConfigError as e:
            return str(e)
        return None

    def voices(self, seed: int = 0) -> list[Voice]:
        out = []
        for variant in list_variants():
            split = hash_split(variant, seed, VALIDATION_FRACTION, TEST_FRACTION)
            out.extend(Voice("espeak", f"{accent}+{variant}", split, (f"espeak:{variant}",)) for accent in ACCENTS)
        return out

    def synthesize(self, text: str, voice: Voice, rate: float = 1.0, pitch: float = 1.0, pitch_range: int = 50) -> np.ndarray:
        if self._espeak is None:
            self._espeak = Espeak()
        accent, _, variant = voice.name.partition("+")
        pcm = self._espeak.synth(text, accent, variant or None, rate_wpm=int(round(175 * rate)), pitch=int(np.clip(round(50 * pitch), 0, 99)),
                                 pitch_range=pitch_range)
        return to_16k(pcm.astype(np.float32) / 32768.0, self._espeak.sample_rate, text, "espeak")
