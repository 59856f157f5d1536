"""``LogMelFrontend``: the one log-mel implementation, used by training and by the runtime.

Numbers (DESIGN.md section 6): 16 kHz mono float32; a 30 ms periodic Hann window (480 samples)
zero-padded to a 512-point FFT; 10 ms hop; 40 Slaney mel bands from 20 to 7600 Hz on the power
spectrum; ``log(mel + 1e-6)``; no centring. A 1 s clip gives 98 frames.

The streaming path keeps only the samples that the next frame still needs, so ``push`` over any
chunking emits exactly the frames that ``features`` gives for the whole signal.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekd.core.units import FRAME_SAMPLES, HOP_SAMPLES, N_FFT, N_MELS, SAMPLE_RATE

__all__ = ["FrontendParams", "LogMelFrontend", "mel_filterbank", "hz_to_mel", "mel_to_hz", "mel_points"]


@dataclass(frozen=True)
class FrontendParams:
    """Every number that defines the features; stored in each bundle's manifest."""

    sample_rate: int = SAMPLE_RATE
    window_samples: int = FRAME_SAMPLES
    hop_samples: int = HOP_SAMPLES
    n_fft: int = N_FFT
    n_mels: int = N_MELS
    fmin_hz: float = 20.0
    fmax_hz: float = 7600.0
    log_floor: float = 1e-6
    window: str = "hann_periodic"
    mel_scale: str = "slaney"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrontendParams:
        """The parameters in ``d`` (others default), checked: a ``ValueError`` says what is wrong in one line."""
        if not isinstance(d, dict):
            raise ValueError(f"frontend must be an object, not {type(d).__name__}")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        p = cls(**known)
        for name in ("sample_rate", "window_samples", "hop_samples", "n_fft", "n_mels"):
            v = getattr(p, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"frontend {name} must be a positive integer, got {v!r}")
        for name in ("fmin_hz", "fmax_hz", "log_floor"):
            v = getattr(p, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"frontend {name} must be a finite number, got {v!r}")
        if p.window != "hann_periodic" or p.mel_scale != "slaney":
            raise ValueError(f"unsupported frontend window/mel scale: {p.window}/{p.mel_scale} (hann_periodic/slaney)")
        if p.window_samples > p.n_fft:
            raise ValueError(f"frontend window_samples {p.window_samples} exceeds n_fft {p.n_fft}")
        if not 0.0 <= p.fmin_hz < p.fmax_hz <= p.sample_rate / 2:
            raise ValueError(f"frontend needs 0 <= fmin_hz < fmax_hz <= sample_rate/2, got {p.fmin_hz}..{p.fmax_hz} Hz")
        if not p.log_floor > 0:
            raise ValueError(f"frontend log_floor must be > 0, got {p.log_floor}")
        return p

    def num_frames(self, num_samples: int) -> int:
        """Frames a batch computation gives for ``num_samples`` samples (no centring)."""
        if num_samples < self.window_samples:
            return 0
        return 1 + (num_samples - self.window_samples) // self.hop_samples

    @property
    def floor_value(self) -> float:
        """The feature value of digital silence: ``log(0 + floor)``."""
        return float(np.log(self.log_floor))


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Hz to Slaney mels (librosa's default scale)."""
    # Slaney: linear below 1 kHz, logarithmic above.
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / f_sp
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Slaney mels to Hz (the inverse of ``hz_to_mel``)."""
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_points(p: FrontendParams) -> np.ndarray:
    """The ``n_mels + 2`` edges and centres of the mel bands, in mels, evenly spaced from fmin to fmax."""
    return np.linspace(hz_to_mel(np.array(p.fmin_hz)), hz_to_mel(np.array(p.fmax_hz)), p.n_mels + 2)


def mel_filterbank(p: FrontendParams) -> np.ndarray:
    """Slaney-normalised triangular mel filters, shape ``(n_fft // 2 + 1, n_mels)``."""
    n_bins = p.n_fft // 2 + 1
    fft_hz = np.linspace(0.0, p.sample_rate / 2.0, n_bins)
    hz_pts = mel_to_hz(mel_points(p))
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_hz[None, :]
    weights = np.zeros((p.n_mels, n_bins))
    for i in range(p.n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_pts[2 : p.n_mels + 2] - hz_pts[: p.n_mels]))[:, None]
    return weights.T.astype(np.float32)


class _Workspace:
    """Buffers for up to ``capacity`` frames, reused call after call (grown only when more frames arrive at once)."""

    def __init__(self, p: FrontendParams, nnz: int, capacity: int) -> None:
        bins = p.n_fft // 2 + 1
        self.capacity = capacity
        # windowed frames already zero-padded to n_fft: the FFT reads them in place (rfft's own padding copies)
        self.windowed = np.zeros((capacity, p.n_fft), np.float32)
        self.spec = np.zeros((capacity, bins), np.complex64)
        self.power = np.zeros((capacity, bins), np.float32)
        self.tmp = np.zeros((capacity, bins), np.float32)
        self.gathered = np.zeros((capacity, nnz), np.float32)
        self.mel = np.zeros((capacity, p.n_mels), np.float32)


class LogMelFrontend:
    """Log-mel features for a whole clip (``features``) or a stream (``push`` / ``reset``).

    All arithmetic is float32 and per frame (window, real FFT of the new frames only, power, a sparse mel
    product summed band by band with ``np.add.reduceat``, log), so a frame's value does not depend on how many
    frames are computed together: streaming equals batch bit for bit. The streaming path reuses its buffers:
    in the steady state a hop allocates no array.
    """

    def __init__(self, params: FrontendParams | None = None) -> None:
        self.params = params or FrontendParams()
        p = self.params
        if p.window_samples > p.n_fft:
            raise ValueError("window_samples must not exceed n_fft")
        n = np.arange(p.window_samples)
        self._window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / p.window_samples)).astype(np.float32)
        # the mel matrix is mostly zeros (each band spans a few FFT bins): keep each band's bins and weights
        dense = mel_filterbank(p)
        cols: list[int] = []
        wts: list[float] = []
        starts: list[int] = []
        for m in range(p.n_mels):
            nz = np.flatnonzero(dense[:, m])
            starts.append(len(cols))
            if nz.size == 0:  # an empty band still needs one (zero) term: reduceat segments may not be empty
                cols.append(0)
                wts.append(0.0)
                continue
            cols.extend(int(i) for i in nz)
            wts.extend(float(w) for w in dense[nz, m])
        self._cols = np.asarray(cols, dtype=np.intp)
        self._wts = np.asarray(wts, dtype=np.float32)
        self._starts = np.asarray(starts, dtype=np.intp)
        self._floor = np.float32(p.log_floor)
        self._work = _Workspace(p, self._cols.shape[0], 16)
        # streaming: samples not yet consumed by a frame, double-buffered so keeping the tail never overlaps
        self._bufs = [np.zeros(4 * p.sample_rate, np.float32), np.zeros(4 * p.sample_rate, np.float32)]
        self._cur = 0
        self._held = 0

    # ---- the per-frame arithmetic, shared by batch and streaming ----------------------
    def _log_mel(self, x: np.ndarray, n: int, w: _Workspace) -> np.ndarray:
        """Log-mel of the ``n`` frames of ``x`` (a contiguous float32 signal) into ``w.mel[:n]``."""
        p = self.params
        # overlapping frames as a view of x; np.ndarray(buffer=...) rather than as_strided, whose __array_interface__
        # round trip leaks ~20 bytes a call in numpy 2.4 (about 1 MB per hour of streaming, seen with tracemalloc)
        frames = np.ndarray(shape=(n, p.window_samples), dtype=np.float32, buffer=x, strides=(4 * p.hop_samples, 4))
        win, spec, power, tmp = w.windowed[:n], w.spec[:n], w.power[:n], w.tmp[:n]
        np.multiply(frames, self._window, out=win[:, : p.window_samples])  # the tail stays zero
        np.fft.rfft(win, axis=-1, out=spec)
        np.multiply(spec.real, spec.real, out=power)
        np.multiply(spec.imag, spec.imag, out=tmp)
        np.add(power, tmp, out=power)
        g, mel = w.gathered[:n], w.mel[:n]
        np.take(power, self._cols, axis=1, out=g, mode="clip")
        np.multiply(g, self._wts, out=g)
        np.add.reduceat(g, self._starts, axis=1, out=mel)
        np.add(mel, self._floor, out=mel)
        np.log(mel, out=mel)
        return mel

    # ---- batch -------------------------------------------------------------------------
    def features(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel of a clip: ``(num_frames, n_mels)`` float32 (zero frames for audio shorter than a window)."""
        x = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        p = self.params
        n = p.num_frames(x.shape[0])
        if n == 0:
            return np.zeros((0, p.n_mels), dtype=np.float32)
        return self._log_mel(x, n, _Workspace(p, self._cols.shape[0], n))  # a workspace of its own: nothing shared

    # ---- streaming ---------------------------------------------------------------------
    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed samples; return the frames they complete, ``(k, n_mels)``, exactly as ``features`` would."""
        return self.push_view(samples).copy()

    def push_view(self, samples: np.ndarray, min_frames: int = 1) -> np.ndarray:
        """``push`` without the copy: the frames are a view into a buffer the next call overwrites.

        ``min_frames``: hold the samples (return no frames) until at least that many frames are complete. A caller
        that needs frames only in groups (a model hop) computes them in fewer, larger batches: the same values (every
        frame's arithmetic is its own), less per-call overhead.
        """
        p = self.params
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        total = self._held + x.shape[0]
        if total > self._bufs[0].shape[0]:  # a chunk longer than any before: grow once
            size = max(total, 2 * self._bufs[0].shape[0])
            grown = [np.zeros(size, np.float32), np.zeros(size, np.float32)]
            grown[0][: self._held] = self._bufs[self._cur][: self._held]
            self._bufs, self._cur = grown, 0
        buf = self._bufs[self._cur]
        buf[self._held : total] = x
        n = p.num_frames(total)
        if n < max(1, min_frames):
            self._held = total
            return self._work.mel[:0]
        if n > self._work.capacity:
            self._work = _Workspace(p, self._cols.shape[0], max(n, 2 * self._work.capacity))
        mel = self._log_mel(buf, n, self._work)
        used = n * p.hop_samples
        other = self._bufs[1 - self._cur]
        other[: total - used] = buf[used:total]
        self._cur, self._held = 1 - self._cur, total - used
        return mel

    def reset(self) -> None:
        """Forget buffered samples (start of a new stream)."""
        self._held = 0
