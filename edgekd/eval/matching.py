"""Hit windows and detection replay: the one definition every evaluation counts with (tuning, wake-word FRR/FA,
the demo's stream check).

- **Hit window**: a detection counts for a phrase said at ``[onset, offset]`` when it lands in
  ``[onset, offset + HIT_TAIL_MS]`` (both ends included): a streaming model fires after the word ends, once its
  window holds enough of it. MLPerf Tiny's streaming wake-word rule uses the same one-second tail.
- **Replay**: posteriors smoothed by a causal moving average over the last ``n`` inferences (fewer at the start), then
  a detection at the first smoothed score at or over the threshold and none for ``debounce_ms`` after it: what the
  runtime's ``KwsPostprocessor`` does hop by hop, computed here over a whole timeline at once.
- **Matching**: each detection takes the earliest phrase of its label, not yet hit, whose window holds it; a
  detection that takes none is a false alarm.

numpy only: runs on a board.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["HIT_TAIL_MS", "DEBOUNCE_MS", "in_hit_window", "moving_average", "fire", "replay", "best_of", "replay_best", "match"]

HIT_TAIL_MS = 1000
DEBOUNCE_MS = 1000


def in_hit_window(t_ms: np.ndarray | float, onset_ms: float, offset_ms: float, tail_ms: float = HIT_TAIL_MS) -> np.ndarray:
    """Whether detection time(s) ``t_ms`` fall in the hit window of a phrase said at ``[onset_ms, offset_ms]``."""
    t = np.asarray(t_ms, dtype=np.float64)
    return (t >= onset_ms) & (t <= offset_ms + tail_ms)


def moving_average(x: np.ndarray, n: int) -> np.ndarray:
    """Causal mean over the last ``n`` rows of ``x`` (axis 0), over fewer rows at the start: the runtime's smoothing."""
    x = np.asarray(x, dtype=np.float64)
    csum = np.cumsum(np.concatenate([np.zeros((1, *x.shape[1:])), x]), axis=0)
    idx = np.arange(x.shape[0])
    lo = np.maximum(0, idx + 1 - max(1, int(n)))
    count = (idx + 1 - lo).reshape(-1, *([1] * (x.ndim - 1)))
    return (csum[idx + 1] - csum[lo]) / count


def fire(t_ms: np.ndarray, scores: np.ndarray, threshold: float, debounce_ms: float = DEBOUNCE_MS) -> np.ndarray:
    """Indices where a detection fires: the first score at or over ``threshold``, then nothing for ``debounce_ms``."""
    t = np.asarray(t_ms)
    out: list[int] = []
    last = -np.inf
    for i in np.flatnonzero(np.asarray(scores) >= threshold):
        if t[i] - last >= debounce_ms:
            out.append(int(i))
            last = float(t[i])
    return np.asarray(out, dtype=np.intp)


def replay(probs: np.ndarray, t_ms: np.ndarray, n_smooth: int, threshold: float, refractory_ms: float = DEBOUNCE_MS) -> list[tuple[int, int]]:
    """Detections ``(column, t_ms)`` of a posterior timeline ``probs`` (inferences x labels) under one post-processing
    setting: smoothed, the best label of each inference against the threshold, a refractory time after each."""
    return replay_best(best_of(probs, n_smooth), t_ms, threshold, refractory_ms)


def best_of(probs: np.ndarray, n_smooth: int) -> tuple[np.ndarray, np.ndarray]:
    """The best column of each smoothed inference and its smoothed score: what ``replay`` thresholds (computed once per
    smoothing window when a sweep tries many thresholds)."""
    smoothed = moving_average(probs, n_smooth)
    best = smoothed.argmax(axis=1)
    return best, smoothed[np.arange(smoothed.shape[0]), best]


def replay_best(best: tuple[np.ndarray, np.ndarray], t_ms: np.ndarray, threshold: float,
                refractory_ms: float = DEBOUNCE_MS) -> list[tuple[int, int]]:
    """``replay`` from ``best_of``'s output."""
    label, score = best
    return [(int(label[i]), int(t_ms[i])) for i in fire(t_ms, score, threshold, refractory_ms)]


def match(truth: Sequence[tuple[str, float, float]], detections: Sequence[tuple[str, float]],
          tail_ms: float = HIT_TAIL_MS) -> tuple[np.ndarray, int]:
    """Phrases ``(label, onset_ms, offset_ms)`` against detections ``(label, t_ms)`` in time order: which phrases were
    hit (bool per phrase) and how many detections were false alarms."""
    hit = np.zeros(len(truth), dtype=bool)
    false = 0
    for label, t in detections:
        k = next((j for j, (name, a, b) in enumerate(truth) if name == label and not hit[j] and bool(in_hit_window(t, a, b, tail_ms))),
                 None)
        if k is None:
            false += 1
        else:
            hit[k] = True
    return hit, false
