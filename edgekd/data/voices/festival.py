"""festival (Debian ``festival`` + ``festvox-kallpc16k``, ``festvox-kdlpc16k``, ``festvox-us-slt-hts``).

Speakers are split by person, across engines (flite has kal and slt too): kal and slt train, ked is held out for
test. Festival's diphone voices cannot move pitch here: ``pitch`` is ignored.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edgekd.data.voices.bank import Voice, to_16k, wav_from_command

__all__ = ["FestivalEngine", "FESTIVAL_VOICES"]

# voice -> (speaker, split, Debian package, voice folder)
FESTIVAL_VOICES: dict[str, tuple[str, str, str, str]] = {
    "kal_diphone": ("cmu:kal", "train", "festvox-kallpc16k", "kal_diphone"),
    "cmu_us_slt_arctic_hts": ("cmu:slt", "train", "festvox-us-slt-hts", "cmu_us_slt_arctic_hts"),
    "ked_diphone": ("cmu:ked", "test", "festvox-kdlpc16k", "ked_diphone"),
}
_VOICE_ROOT = Path("/usr/share/festival/voices")


def _installed(folder: str) -> bool:
    return any((d / folder).is_dir() for d in _VOICE_ROOT.glob("*")) if _VOICE_ROOT.is_dir() else False


class FestivalEngine:
    name = "festival"

    def available(self) -> str | None:
        if shutil.which("text2wave") is None:
            return "festival is not installed (apt install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)"
        if not self.voices():
            return "festival has none of its voices (apt install festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)"
        return None

    def voices(self, seed: int = 0) -> list[Voice]:
        return [Voice("festival", v, split, (spk,)) for v, (spk, split, _, folder) in FESTIVAL_VOICES.items() if _installed(folder)]

    def synthesize(self, text: str, voice: Voice, rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
        x, sr = wav_from_command(["text2wave", "-eval", f"(voice_{voice.name})", "-eval", f"(Parameter.set 'Duration_Stretch {1.0 / rate:.3f})",
                                  "-o"], stdin=text.encode("utf-8"))
        return to_16k(x, sr, text, "festival")
