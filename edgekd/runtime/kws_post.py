"""KWS post-processing: posterior smoothing, per-label thresholds and a refractory time."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError

__all__ = ["Detection", "KwsPostprocessConfig", "KwsPostprocessor", "asks_verifier", "call_numbers", "opening_peaks", "softmax", "verified_hops"]


@dataclass(frozen=True)
class Detection:
    """One event: a keyword at audio time ``t_ms`` (end of the window that fired) with its smoothed score."""

    label: str
    score: float
    t_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"t_ms": self.t_ms, "label": self.label, "score": round(float(self.score), 4)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


@dataclass(frozen=True)
class KwsPostprocessConfig:
    """How posteriors become detections. Stored in the manifest; overridable per run."""

    stride_ms: int = 40
    smooth_ms: int = 120
    threshold: float = 0.7
    thresholds: dict[str, float] = field(default_factory=dict)
    refractory_ms: int = 1000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KwsPostprocessConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        cfg = cls(**known)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for name in ("stride_ms", "smooth_ms", "refractory_ms"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ConfigError(f"postprocess: {name} must be a whole number of milliseconds, got {v!r}")
        if self.stride_ms <= 0 or self.smooth_ms < 0 or self.refractory_ms < 0:
            raise ConfigError("postprocess: stride_ms must be > 0, smooth_ms and refractory_ms >= 0")
        if not isinstance(self.thresholds, dict):
            raise ConfigError(f"postprocess: thresholds must be an object of label -> number, got {type(self.thresholds).__name__}")
        for lab, thr in {"default": self.threshold, **self.thresholds}.items():
            if not isinstance(thr, (int, float)) or isinstance(thr, bool) or not 0.0 < float(thr) <= 1.0:
                raise ConfigError(f"postprocess: threshold for {lab} is {thr!r}; it must be a number in (0, 1]")

    def threshold_for(self, label: str) -> float:
        return float(self.thresholds.get(label, self.threshold))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class KwsPostprocessor:
    """Per-stream state: the last few posteriors and the refractory clock. Every buffer is allocated here, once:
    an update allocates no array.

    With ``gates`` (a bundle with a second stage, ``edgekd.runtime.verifier``) a keyword's smoothed posterior at or over
    its gate opens the gate; ``update``'s ``verify`` is then called once for the verifier's posteriors (in the order of
    ``verifier_labels``), and the keyword fires when its verified score reaches its threshold. Of consecutive
    inferences with a gate open, the first and then every ``verify_every``-th asks, at most ``verify_max_calls`` times
    (None: no cap; ``verified_hops``). A gate stays open ``verify_hold`` inferences after the smoothed posterior falls
    under it (``held_open``). ``verifier_calls`` counts those calls (none during the refractory time). With
    ``verify_peak_power`` > 0 the verified score is the verifier's posterior times the opening's peak (the keyword's
    highest smoothed posterior since its gate opened, ``opening_peaks``) to that power. ``verify`` is given whether this
    is the first call of the opening (the stream then also scores an earlier second: ``VerifierBlock.lookback_ms``)."""

    def __init__(self, labels: tuple[str, ...], keyword_labels: tuple[str, ...], cfg: KwsPostprocessConfig,
                 gates: dict[str, float] | None = None, verifier_labels: tuple[str, ...] = (), verify_every: int = 1,
                 verify_max_calls: int | None = None, verify_hold: int = 0, verify_peak_power: float = 0.0) -> None:
        self.labels = labels
        self.cfg = cfg
        self._kw_idx = np.array([labels.index(k) for k in keyword_labels], dtype=np.intp)
        self._thr = np.array([cfg.threshold_for(k) for k in keyword_labels], dtype=np.float32)
        self._gate: np.ndarray | None = None
        if gates is not None:
            missing = [k for k in keyword_labels if k not in verifier_labels]
            if missing:
                raise ConfigError(f"the verifier has no label {missing[0]!r}; export the verifier from this bundle's teacher")
            self._gate = np.array([gates.get(k, 1.0 + 1e-9) for k in keyword_labels], dtype=np.float64)  # no gate: never opens
            self._v_idx = np.array([verifier_labels.index(k) for k in keyword_labels], dtype=np.intp)
            self._verified = np.zeros(self._kw_idx.shape[0], dtype=np.float64)
            self._open = np.zeros(self._kw_idx.shape[0], dtype=bool)
            # inferences since each keyword's smoothed posterior was last at or over its gate (HOLD_NEVER: not yet)
            self._since = np.full(self._kw_idx.shape[0], HOLD_NEVER, dtype=np.int64)
            # each keyword's highest smoothed posterior since its gate opened (0 while closed), and its weight
            self._peak = np.zeros(self._kw_idx.shape[0], dtype=np.float64)
            self._weight = np.ones(self._kw_idx.shape[0], dtype=np.float64)
        self._peak_power = float(verify_peak_power)
        self._hold = max(0, int(verify_hold))
        self.verifier_calls = 0
        self._every = max(1, int(verify_every))
        self._max_calls = verify_max_calls
        self._open_run = 0
        self._n_smooth = max(1, round(cfg.smooth_ms / cfg.stride_ms) if cfg.smooth_ms else 1)
        # the last n_smooth keyword posteriors in a fixed ring
        self._ring = np.zeros((self._n_smooth, self._kw_idx.shape[0]), dtype=np.float64)
        self._probs = np.zeros(len(labels), dtype=np.float64)
        self._smoothed = np.zeros(self._kw_idx.shape[0], dtype=np.float64)
        self._over = np.zeros(self._kw_idx.shape[0], dtype=bool)
        self._count = 0
        self._last_fire_ms: int | None = None

    def reset(self) -> None:
        self._ring[...] = 0.0
        self._open_run = 0
        if self._gate is not None:
            self._since[...] = HOLD_NEVER
            self._peak[...] = 0.0
        self._count = 0
        self._last_fire_ms = None

    def update_logits(self, logits: np.ndarray, t_ms: int, verify: Callable[[bool], np.ndarray] | None = None) -> Detection | None:
        """``update`` from raw model outputs: the softmax (float64, as ``softmax``) is computed in place."""
        p = self._probs
        np.copyto(p, logits)
        np.subtract(p, p.max(), out=p)
        np.exp(p, out=p)
        np.divide(p, p.sum(), out=p)
        return self.update(p, t_ms, verify)

    def update(self, probs: np.ndarray, t_ms: int, verify: Callable[[bool], np.ndarray] | None = None) -> Detection | None:
        """Add one posterior vector observed at ``t_ms``; return a detection if one fires (with gates: ``verify(first)``
        gives the verifier's posteriors of this moment, asked only when a gate is open; ``first``: the opening's first
        call)."""
        np.take(probs, self._kw_idx, out=self._ring[self._count % self._n_smooth], mode="clip")
        self._count += 1
        n = min(self._count, self._n_smooth)
        smoothed = self._smoothed
        np.sum(self._ring if n == self._n_smooth else self._ring[:n], axis=0, out=smoothed)
        np.divide(smoothed, n, out=smoothed)
        refractory = self._last_fire_ms is not None and t_ms - self._last_fire_ms < self.cfg.refractory_ms
        if self._gate is not None:
            since = self._since
            np.add(since, 1, out=since)  # from HOLD_NEVER (2**30) an int64 never wraps
            np.copyto(since, 0, where=np.greater_equal(smoothed, self._gate, out=self._open))
            np.less_equal(since, self._hold, out=self._open)
            if self._peak_power:  # kept only where it weighs: no work per inference otherwise
                np.maximum(self._peak, smoothed, out=self._peak)
                np.multiply(self._peak, self._open, out=self._peak)  # a closed gate forgets its opening's peak
            if not self._open.any():
                self._open_run = 0
                return None
            self._open_run += 1  # consecutive inferences with a gate open; every ``verify_every``-th is verified
            if refractory or not asks_verifier(self._open_run - 1, self._every, self._max_calls):
                return None
            if verify is None:
                raise ConfigError("this bundle has a verifier; give update() its verify callback")
            self.verifier_calls += 1
            smoothed = np.take(verify(self._open_run == 1), self._v_idx, out=self._verified)  # the verified score replaces the gate's
            if self._peak_power:
                np.multiply(smoothed, np.power(self._peak, self._peak_power, out=self._weight), out=smoothed)
            over = np.logical_and(self._open, np.greater_equal(smoothed, self._thr, out=self._over), out=self._over)
        else:
            if refractory:
                return None
            over = np.greater_equal(smoothed, self._thr, out=self._over)
        if not over.any():
            return None
        best = int(np.argmax(np.where(over, smoothed, -1.0)))
        self._last_fire_ms = t_ms
        return Detection(label=self.labels[int(self._kw_idx[best])], score=float(smoothed[best]), t_ms=t_ms)


HOLD_NEVER = 1 << 30  # "never at or over its gate" for the hold counter


def held_open(over: np.ndarray, hold: int) -> np.ndarray:
    """Where a gate is open given where the score is at or over it (bool per inference, in order): there and for
    ``hold`` inferences after each such inference, as ``KwsPostprocessor`` keeps it open."""
    o = np.asarray(over, dtype=bool)
    if hold <= 0 or not o.any():
        return o
    i = np.arange(o.shape[0])
    last = np.maximum.accumulate(np.where(o, i, -HOLD_NEVER))
    return i - last <= hold


def opening_peaks(scores: np.ndarray, open_: np.ndarray) -> np.ndarray:
    """The highest of ``scores`` since the gate opened, per inference (0 where it is closed; ``open_``: where it is
    open, ``held_open``), as ``KwsPostprocessor`` keeps it for ``verify_peak_power``."""
    s, o = np.asarray(scores, dtype=np.float64), np.asarray(open_, dtype=bool)
    out = np.zeros(s.shape[0])
    edge = np.diff(np.concatenate([[False], o, [False]]).astype(np.int8))
    for a, b in zip(np.flatnonzero(edge == 1), np.flatnonzero(edge == -1), strict=True):  # each run of open inferences
        out[a:b] = np.maximum.accumulate(s[a:b])
    return out


def asks_verifier(k: int, every: int, max_calls: int | None = None) -> bool:
    """Whether the ``k``-th inference (from 0) of a run of open inferences asks the verifier: the first and every
    ``every``-th after it, at most ``max_calls`` of them (None: no cap). ``verified_hops`` is the same rule over a
    whole timeline."""
    return k % every == 0 and (not max_calls or k // every < max_calls)


def verified_hops(open_: np.ndarray, every: int, max_calls: int | None = None) -> np.ndarray:
    """Which inferences ask the verifier, given where a gate is open (bool per inference, in order): in each run of open
    inferences the first and every ``every``-th after it, at most ``max_calls`` of them (refractory time aside), as
    ``KwsPostprocessor`` asks."""
    o = np.asarray(open_, dtype=bool)
    i = np.arange(o.shape[0])
    last_closed = np.maximum.accumulate(np.where(o, -1, i)) if o.size else i
    k, e = i - last_closed - 1, max(1, int(every))  # k: the position in the run of open inferences, from 0
    asked = o & (k % e == 0)
    return asked & (k // e < int(max_calls)) if max_calls else asked


def call_numbers(open_: np.ndarray, asked: np.ndarray) -> np.ndarray:
    """Per inference, how many calls its run of open inferences made before it (``asked``: ``verified_hops``): 0 at an
    opening's first call, the one ``KwsPostprocessor`` tells its ``verify`` is first (``VerifierBlock.lookback_ms``)."""
    o, a = np.asarray(open_, dtype=bool), np.asarray(asked, dtype=bool)
    c = np.cumsum(a) - a  # calls before each inference, over the whole stream
    start = np.maximum.accumulate(np.where(o & ~np.concatenate([[False], o[:-1]]), np.arange(o.shape[0]), 0))
    return c - np.concatenate([[0], np.cumsum(a)])[start]
