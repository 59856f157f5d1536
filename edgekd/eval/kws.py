"""Accuracy of a bundle on a Speech Commands-layout folder, through the runtime (what the board runs).

Only numpy and the runtime are imported, so it runs on a board as well as on the host.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from edgekd.data.speech_commands import SpeechCommands
from edgekd.runtime.kws_stream import KwsDetector

__all__ = ["evaluate_kws"]


def evaluate_kws(
    detector: KwsDetector,
    data_dir: str | os.PathLike[str],
    split: str = "test",
    *,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Top-1 accuracy, per-label recall and the confusion matrix (rows: truth, columns: prediction)."""
    ds = SpeechCommands(data_dir)
    use_split = split if (split == "all" or ds.has_split_lists) else "all"
    labels = detector.labels
    clips = ds.clips(labels, use_split, sample_rate=detector.manifest.sample_rate)
    index = {lab: i for i, lab in enumerate(labels)}
    truth = np.array([index[c.label] for c in clips], dtype=np.int64)
    preds = np.empty_like(truth)
    sr = detector.manifest.sample_rate
    for start in range(0, len(clips), batch_size):
        batch = clips[start : start + batch_size]
        feats = np.stack([detector.clip_features(c.load(sr)) for c in batch])
        preds[start : start + len(batch)] = detector.logits(feats).argmax(axis=-1)
        if progress:
            progress(start + len(batch), len(clips))
    n = len(labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (truth, preds), 1)
    support = confusion.sum(axis=1)
    per_label = {
        lab: (float(confusion[i, i] / support[i]) if support[i] else None) for i, lab in enumerate(labels)
    }
    return {
        "accuracy": float(np.mean(preds == truth)),
        "n": int(truth.shape[0]),
        "split": use_split,
        "labels": list(labels),
        "per_label": per_label,
        "support": {lab: int(support[i]) for i, lab in enumerate(labels)},
        "confusion": confusion.tolist(),
        "bundle": detector.manifest.name,
        "backend": detector.backend.name,
    }
