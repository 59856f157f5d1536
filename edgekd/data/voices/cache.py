"""A disk cache of synthesized utterances keyed by (engine, voice, text, rate, pitch).

Kokoro takes about half a second of a core per word: a second dataset, or a rerun, reuses what was made.
Entries are int16 .npy files at 16 kHz written under a temporary name, then renamed (safe across processes).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekd.data.voices.bank import Voice

__all__ = ["SynthCache", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$EDGEKD_CACHE_DIR/voices``, else ``~/.cache/edgekd/voices``."""
    root = os.environ.get("EDGEKD_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "edgekd") / "voices"


class SynthCache:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, text: str, voice: Voice, rate: float, pitch: float) -> Path:
        key = hashlib.sha1(f"v1|{voice.key}|{text}|{rate:.3f}|{pitch:.3f}".encode()).hexdigest()
        return self.root / voice.engine / key[:2] / f"{key}.npy"

    def get_or_make(self, text: str, voice: Voice, rate: float, pitch: float, make: Callable[[], np.ndarray]) -> np.ndarray:
        p = self.path(text, voice, rate, pitch)
        if p.is_file():
            try:
                return np.load(p).astype(np.float32) / np.float32(32767.0)
            except (OSError, ValueError):
                p.unlink(missing_ok=True)  # a damaged entry: make it again
        q = np.round(np.clip(make(), -1.0, 1.0) * 32767.0).astype(np.int16)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, q)
            os.replace(tmp, p)
        except OSError:
            pass  # a cache that cannot be written costs time, not correctness
        return q.astype(np.float32) / np.float32(32767.0)  # what a later hit returns: the same clip, warm cache or cold
