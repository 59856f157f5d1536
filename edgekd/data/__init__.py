"""Datasets: readers for what users have on disk, the embedded synthesizer, augmentation, feature caches.

Importing this package loads only numpy and the standard library, so evaluation can run on a board.
"""

KWS12_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND_NOISE = "_background_noise_"
KWS12_LABELS = (*KWS12_KEYWORDS, UNKNOWN, SILENCE)

__all__ = ["BACKGROUND_NOISE", "KWS12_KEYWORDS", "KWS12_LABELS", "SILENCE", "UNKNOWN"]
