"""Score a sound-event bundle on annotated audio with the runtime's own events (``edgekd eval --sed-annotations``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekd.core.errors import DataError
from edgekd.data.annotations import read_annotations
from edgekd.eval.sed_metrics import score_events
from edgekd.runtime.wav import load_audio

__all__ = ["evaluate_sed_bundle"]


def evaluate_sed_bundle(detector: Any, annotations: Path, audio_dir: Path, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Every WAV of ``audio_dir`` through the bundle; events scored against the tsv (whose labels must be the bundle's)."""
    labels = list(detector.labels)
    ref = read_annotations(annotations, labels=labels)
    if not audio_dir.is_dir():
        raise DataError(f"--audio {audio_dir}: not a folder of WAVs")
    wavs = sorted(audio_dir.glob("*.wav"))
    if not wavs:
        raise DataError(f"--audio {audio_dir}: no .wav files")
    missing = sorted({r.filename for r in ref} - {w.name for w in wavs})
    if missing:
        raise DataError(f"{annotations} names {missing[0]} (and {len(missing) - 1} more), not found in {audio_dir}")
    events, durations = {}, {}
    for i, w in enumerate(wavs):
        x = load_audio(w, detector.manifest.sample_rate)
        durations[w.name] = x.shape[0] / detector.manifest.sample_rate
        events[w.name] = detector.events(x)
        if progress:
            progress(i + 1, len(wavs))
    return {"bundle": detector.manifest.name, "files": len(wavs), **score_events(ref, events, labels, durations),
            "postprocess": detector.postprocess.to_dict()}
