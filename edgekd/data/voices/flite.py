"""flite (Debian package ``flite``): CMU's small synthesizer with four speakers.

Speakers are split by person, across engines too (festival has kal and slt as well): awb, slt and kal train;
rms is held out for test. flite has no validation speaker.
"""

from __future__ import annotations

import shutil

import numpy as np

from edgekd.data.voices.bank import Voice, to_16k, wav_from_command

__all__ = ["FliteEngine", "FLITE_VOICES"]

# voice -> (speaker, split, typical F0 in Hz)
FLITE_VOICES: dict[str, tuple[str, str, float]] = {
    "awb": ("cmu:awb", "train", 110.0),
    "slt": ("cmu:slt", "train", 170.0),
    "kal16": ("cmu:kal", "train", 105.0),
    "rms": ("cmu:rms", "test", 100.0),
}


class FliteEngine:
    name = "flite"

    def available(self) -> str | None:
        return None if shutil.which("flite") else "flite is not installed (apt install flite)"

    def voices(self, seed: int = 0) -> list[Voice]:
        return [Voice("flite", v, split, (spk,)) for v, (spk, split, _) in FLITE_VOICES.items()]

    def synthesize(self, text: str, voice: Voice, rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
        f0 = FLITE_VOICES[voice.name][2] * pitch
        x, sr = wav_from_command(["flite", "-voice", voice.name, "--setf", f"duration_stretch={1.0 / rate:.3f}",
                                  "--setf", f"int_f0_target_mean={f0:.0f}", "-t", text, "-o"])
        return to_16k(x, sr, text, "flite")
