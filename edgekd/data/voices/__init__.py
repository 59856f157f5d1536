"""The voice bank: every installed speech synthesizer behind one interface (see ``bank.py``)."""

from edgekd.data.voices.bank import (
    ENGINE_NAMES,
    SAMPLE_RATE,
    Voice,
    VoiceEngine,
    available_engines,
    find_voice,
    get_engine,
    parse_engines,
    synthesize,
    voice_split,
)

__all__ = ["ENGINE_NAMES", "SAMPLE_RATE", "Voice", "VoiceEngine", "available_engines", "find_voice", "get_engine", "parse_engines",
           "synthesize", "voice_split"]
