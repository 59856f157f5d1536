"""Sound-event post-processing: frame probabilities -> events with onset and offset (numpy only).

Per class, in this order: a median filter over ``median_frames`` frames (zeros before the stream starts and
after it ends), hysteresis (an event opens at a frame >= the onset threshold and stays open while frames are
>= the offset threshold), gap merging (an event that opens less than ``merge_gap_ms`` after the previous one of
its class closed continues it), and a minimum duration. Frame ``t`` covers ``[t * hop, (t + 1) * hop)`` ms;
``latency_ms`` moves every reported time that much earlier (a causal model's scores rise and fall late; the value
is tuned on validation data like the thresholds).

``sed_events`` does it for a whole clip; ``SedStream`` does the same incrementally and returns exactly the same
events: an ``onset`` line as soon as an event has lasted the minimum duration (alarms that cannot wait), and the
event itself once it has closed and the merge gap has passed. The median filter delays everything by
``median_frames // 2`` frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError

__all__ = ["SedPostprocessConfig", "SedEvent", "sed_events", "SedStream", "sigmoid"]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Frame logits -> probabilities, in float64 (the thresholds compare against these)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


@dataclass(frozen=True)
class SedPostprocessConfig:
    onset_threshold: float = 0.5
    offset_threshold: float = 0.3
    thresholds: dict[str, list[float]] = field(default_factory=dict)  # label -> [onset, offset]
    median_frames: int = 5
    min_duration_ms: int = 100
    merge_gap_ms: int = 200
    latency_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SedPostprocessConfig:
        cfg = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.median_frames < 1 or self.median_frames % 2 == 0:
            raise ConfigError(f"postprocess: median_frames must be odd and >= 1, got {self.median_frames}")
        if self.min_duration_ms < 0 or self.merge_gap_ms < 0 or self.latency_ms < 0:
            raise ConfigError("postprocess: min_duration_ms, merge_gap_ms and latency_ms must be >= 0")
        for lab, (on, off) in {"default": (self.onset_threshold, self.offset_threshold), **self.thresholds}.items():
            if not 0.0 < off <= on <= 1.0:
                raise ConfigError(f"postprocess: thresholds for {lab} must satisfy 0 < offset ({off}) <= onset ({on}) <= 1")

    def pair(self, label: str) -> tuple[float, float]:
        on, off = self.thresholds.get(label, (self.onset_threshold, self.offset_threshold))
        return float(on), float(off)


@dataclass(frozen=True)
class SedEvent:
    label: str
    onset_ms: int
    offset_ms: int | None  # None on an ``onset`` line
    score: float

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"onset_ms": self.onset_ms, "label": self.label, "score": round(self.score, 4)}
        if self.offset_ms is None:
            d["event"] = "onset"
        else:
            d["offset_ms"] = self.offset_ms
        return d


class _ClassTracker:
    """Hysteresis + merge + minimum duration for one class, frame by frame."""

    def __init__(self, label: str, on: float, off: float, hop_ms: float, min_frames: int, gap_frames: int, latency_ms: int = 0) -> None:
        self.label, self.on, self.off = label, on, off
        self.hop_ms, self.min_frames, self.gap_frames, self.latency_ms = hop_ms, min_frames, gap_frames, latency_ms
        self.start: int | None = None  # first frame of the current (possibly merged) event
        self.end: int | None = None  # first frame after it, once it has closed
        self.active = False
        self.score = 0.0
        self.announced = False

    def _ms(self, frame: int) -> int:
        return max(0, int(round(frame * self.hop_ms)) - self.latency_ms)

    def _close(self, out: list[SedEvent]) -> None:
        assert self.start is not None and self.end is not None
        if self.end - self.start >= self.min_frames:
            out.append(SedEvent(self.label, self._ms(self.start), self._ms(self.end), self.score))
        self.start = self.end = None
        self.score, self.announced = 0.0, False

    def step(self, t: int, p: float, out: list[SedEvent]) -> None:
        if self.active:
            if p >= self.off:
                self.score = max(self.score, p)
            else:
                self.active, self.end = False, t
        elif p >= self.on:
            if self.start is not None and self.end is not None and t - self.end < self.gap_frames:
                self.end = None  # re-opened within the merge gap: the same event goes on
            else:
                if self.start is not None:
                    self._close(out)
                self.start = t
            self.active = True
            self.score = max(self.score, p)
        elif self.start is not None and self.end is not None and t - self.end >= self.gap_frames:
            self._close(out)
        if self.active and not self.announced and self.start is not None and t + 1 - self.start >= self.min_frames:
            self.announced = True
            out.append(SedEvent(self.label, self._ms(self.start), None, self.score))

    def finish(self, t_end: int, out: list[SedEvent]) -> None:
        if self.active:
            self.active, self.end = False, t_end
        if self.start is not None:
            self._close(out)


class SedStream:
    """Incremental post-processing of one stream: ``push(frame_probs)`` -> lines; ``finish()`` closes what is open."""

    def __init__(self, labels: tuple[str, ...], hop_ms: float, cfg: SedPostprocessConfig) -> None:
        self.labels, self.hop_ms, self.cfg = labels, hop_ms, cfg
        self._half = cfg.median_frames // 2
        self._buf = np.zeros((self._half, len(labels)), dtype=np.float64)  # zeros before the stream
        self._t = 0  # next frame to post-process
        min_frames = int(np.ceil(cfg.min_duration_ms / hop_ms - 1e-9))
        gap_frames = int(np.ceil(cfg.merge_gap_ms / hop_ms - 1e-9))
        self._trackers = [_ClassTracker(lab, *cfg.pair(lab), hop_ms, min_frames, gap_frames, cfg.latency_ms) for lab in labels]

    def _run(self, buf: np.ndarray, out: list[SedEvent]) -> None:
        m = self.cfg.median_frames
        n = buf.shape[0] - m + 1
        if n <= 0:
            self._buf = buf  # not enough frames for one median yet: keep them all
            return
        med = np.median(np.lib.stride_tricks.sliding_window_view(buf, m, axis=0), axis=-1) if m > 1 else buf
        for k in range(n):
            for c, tr in enumerate(self._trackers):
                tr.step(self._t, float(med[k, c]), out)
            self._t += 1
        self._buf = buf[n:]

    def push(self, probs: np.ndarray) -> list[SedEvent]:
        out: list[SedEvent] = []
        p = np.asarray(probs, dtype=np.float64).reshape(-1, len(self.labels))
        self._run(np.concatenate([self._buf, p]), out)
        return out

    def finish(self) -> list[SedEvent]:
        out: list[SedEvent] = []
        self._run(np.concatenate([self._buf, np.zeros((self._half, len(self.labels)))]), out)
        for tr in self._trackers:
            tr.finish(self._t, out)
        return out


def sed_events(probs: np.ndarray, labels: tuple[str, ...], hop_ms: float, cfg: SedPostprocessConfig, onsets: bool = False) -> list[SedEvent]:
    """Events of a whole clip (``probs``: frames x classes), sorted by onset; with ``onsets`` also the onset lines."""
    s = SedStream(labels, hop_ms, cfg)
    lines = s.push(probs) + s.finish()
    keep = [e for e in lines if onsets or e.offset_ms is not None]
    return sorted(keep, key=lambda e: (e.onset_ms, e.label, e.offset_ms is not None))
