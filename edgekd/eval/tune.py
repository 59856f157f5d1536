"""Choose post-processing from data: a sweep of smoothing windows and thresholds on a validation stream.

The validation clips are laid end to end (with short gaps of low noise) into one long stream; a keyword
clip counts as detected when a detection with its label lands in its hit window (``edgekd.eval.matching``: the
clip's start to its end + 1 s); every other detection is a false alarm. Posteriors are computed once, exactly as a ``Stream``
computes them (same frames, same windows, same stride), then every (smoothing, threshold) pair is
replayed. The score is recall minus false alarms per keyword clip; ties go to the higher threshold.
Runtime only (numpy): it can run on a board as well.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.data.speech_commands import SpeechCommands
from edgekd.eval.matching import best_of, match, replay_best
from edgekd.runtime.frontend import LogMelFrontend
from edgekd.runtime.kws_post import softmax
from edgekd.runtime.kws_stream import KwsDetector

__all__ = ["validation_stream", "stream_posteriors", "sweep_postprocess", "TuneResult"]


@dataclass(frozen=True)
class TuneResult:
    stride_ms: int
    smooth_ms: int
    threshold: float
    refractory_ms: int
    recall: float
    false_alarms: int
    keyword_clips: int
    audio_seconds: float
    table: list[dict[str, Any]]

    def postprocess(self) -> dict[str, Any]:
        return {"stride_ms": self.stride_ms, "smooth_ms": self.smooth_ms, "threshold": self.threshold, "refractory_ms": self.refractory_ms}


def validation_stream(detector: KwsDetector, data_dir: str | os.PathLike[str], split: str = "validation", *, max_clips: int = 600,
                      gap_s: float = 0.4, seed: int = 0) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    sr = detector.manifest.sample_rate
    clips = SpeechCommands(data_dir).clips(detector.labels, split, sample_rate=sr, seed=seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clips))[:max_clips]
    pieces, truth, pos = [], [], 0
    keywords = set(detector.manifest.keyword_labels)
    for i in order:
        c = clips[int(i)]
        x = c.load(sr)[:sr]
        gap = (0.001 * rng.standard_normal(int(gap_s * sr))).astype(np.float32)
        if c.label in keywords:
            truth.append((c.label, int(1000 * pos / sr), int(1000 * (pos + x.shape[0]) / sr)))
        pieces += [x, gap]
        pos += x.shape[0] + gap.shape[0]
    return np.concatenate(pieces).astype(np.float32), truth


def stream_posteriors(detector: KwsDetector, audio: np.ndarray, stride_ms: int, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Keyword posteriors at every stride step and their t_ms, identical to what a Stream computes."""
    p = detector.frontend_params
    w = detector.manifest.window_frames
    feats = LogMelFrontend(p).features(audio)  # the same frames push() yields, whatever the chunking
    padded = np.concatenate([np.full((w, p.n_mels), p.floor_value, np.float32), feats])
    hop_ms = 1000.0 * p.hop_samples / p.sample_rate
    stride = max(1, round(stride_ms / hop_ms))
    ends = np.arange(stride, feats.shape[0] + 1, stride)  # frames seen when each inference runs
    kw = [detector.labels.index(k) for k in detector.manifest.keyword_labels]
    out = []
    for s in range(0, ends.shape[0], batch):
        wins = np.stack([padded[e : e + w] for e in ends[s : s + batch]])
        out.append(softmax(detector.logits(wins).astype(np.float64))[:, kw])
    t_ms = np.round((ends - 1) * hop_ms + 1000.0 * p.window_samples / p.sample_rate).astype(np.int64)
    return np.concatenate(out), t_ms


def sweep_postprocess(detector: KwsDetector, data_dir: str | os.PathLike[str], *, strides_ms: tuple[int, ...] = (40, 80), refractory_ms: int = 1000,
                      smooth_ms: tuple[int, ...] = (40, 80, 120, 200, 320), thresholds: tuple[float, ...] = tuple(np.round(np.arange(0.4, 0.96, 0.05), 2)),
                      split: str = "validation", max_clips: int = 600, progress: Callable[[int, int], None] | None = None,
                      stride_ms: int | None = None) -> TuneResult:
    """The best post-processing on a stream of ``split``'s clips. ``stride_ms``: sweep that stride only (the CPU budget a
    user fixed: one model call per stride) instead of the default strides."""
    if detector.mode == "stream":  # a streaming-state model: one call per stride; the hop, twice or four times it
        hop_ms = detector.hop_ms or detector.postprocess.stride_ms
        strides_ms = (hop_ms, 2 * hop_ms, 4 * hop_ms) if detector.any_hop else (hop_ms,)
    if stride_ms is not None:
        p = detector.frontend_params
        frame_ms = 1000 * p.hop_samples // p.sample_rate
        if stride_ms <= 0 or stride_ms % frame_ms:
            raise ConfigError(f"--stride-ms {stride_ms}: give a positive multiple of the {frame_ms} ms frame hop")
        if detector.mode == "stream" and not detector.any_hop and stride_ms != strides_ms[0]:
            raise ConfigError(f"--stride-ms {stride_ms}: this streaming bundle runs {strides_ms[0]} ms per call only")
        strides_ms = (stride_ms,)
        smooth_ms = tuple(sorted({*smooth_ms, stride_ms}))  # at least one smoothing window as long as the stride
    audio, truth = validation_stream(detector, data_dir, split, max_clips=max_clips)
    kw_names = detector.manifest.keyword_labels
    table, best = [], None
    grid = [(st, sm) for st in strides_ms for sm in smooth_ms if sm >= st]
    for done, (stride_ms, sm) in enumerate(grid):
        if not table or table[-1]["stride_ms"] != stride_ms:
            probs, t_ms = stream_posteriors(detector, audio, stride_ms)
        best_smoothed = best_of(probs, max(1, round(sm / stride_ms)))  # once per smoothing window, not per threshold
        for thr in thresholds:
            fired = replay_best(best_smoothed, t_ms, float(thr), refractory_ms)
            hit, false = match(truth, [(kw_names[lab], t) for lab, t in fired])
            recall = float(hit.mean()) if truth else 0.0
            score = recall - false / max(1, len(truth))
            row = {"stride_ms": stride_ms, "smooth_ms": sm, "threshold": float(thr), "recall": recall, "false_alarms": false, "score": score}
            table.append(row)
            # ties (within half a percent) go to the cheaper stride, then to the higher threshold
            key = (round(score / 0.005), stride_ms, thr)
            if best is None or key > (round(best["score"] / 0.005), best["stride_ms"], best["threshold"]):
                best = row
        if progress:
            progress(done + 1, len(grid))
    assert best is not None
    return TuneResult(int(best["stride_ms"]), int(best["smooth_ms"]), float(best["threshold"]), refractory_ms, best["recall"], best["false_alarms"],
                      len(truth), audio.shape[0] / detector.manifest.sample_rate, table)
