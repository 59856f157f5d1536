"""Waveform augmentation in numpy (librosa's phase vocoder for the pitch shift): make one synthesizer sound like many speakers, rooms and microphones.

Each function takes and returns float32 mono; ``augment_clip`` chains them with random parameters.
SpecAugment (time/frequency masks on features) lives with training, where it runs per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgekd.runtime.wav import fast_fft_len

if TYPE_CHECKING:
    from edgekd.data.rooms import RirBank

__all__ = ["AugmentConfig", "augment_clip", "colored_noise", "fit_to_length", "add_noise", "warp_speed", "shift_pitch", "stretch_tempo",
           "random_eq", "reverb", "room_response", "field_view"]


@dataclass(frozen=True)
class AugmentConfig:
    speed_range: tuple[float, float] = (0.88, 1.12)  # resampling factor: pitch, formants (tract length) and tempo
    p_eq: float = 0.6
    p_reverb: float = 0.4  # a room: from the simulated RIR bank when one is given, else the synthetic ``reverb``
    p_noise: float = 0.8
    snr_db: tuple[float, float] = (0.0, 30.0)
    gain_db: tuple[float, float] = (-18.0, 0.0)
    max_shift_s: float = 0.1
    # rooms and microphones (used when ``augment_clip`` gets a RIR bank / real recordings)
    p_room: float = 0.6  # replaces p_reverb when a RIR bank is given
    p_background: float = 0.5  # share of the noise draws that are real recordings
    p_clip: float = 0.1  # an overdriven cheap microphone: +3..12 dB, then clipped
    far_field_db_per_doubling: float = 3.0  # SNR lost per doubling of the distance beyond 0.5 m
    # higher voices: this share of the speech views shifted up in pitch and formants by semitones drawn in pitch_st, at
    # the same tempo (``shift_pitch``); 0 = off (and no random draw, so the views are what they were without it)
    p_pitch: float = 0.0
    pitch_st: tuple[float, float] = (0.0, 6.0)
    # slower talkers: this share of the speech views made longer by a factor drawn in stretch, at the same pitch
    # (``stretch_tempo``); a view that grows past the clip is centre-cut like any long clip; 0 = off (no random draw)
    p_stretch: float = 0.0
    stretch: tuple[float, float] = (1.0, 1.3)


def fit_to_length(x: np.ndarray, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pad (at a random place, or at the end without ``rng``) or centre-cut ``x`` to ``n`` samples."""
    if x.shape[0] >= n:
        start = (x.shape[0] - n) // 2
        return x[start : start + n].astype(np.float32)
    pad = n - x.shape[0]
    left = int(rng.integers(0, pad + 1)) if rng is not None else 0
    return np.pad(x, (left, pad - left)).astype(np.float32)


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    spec /= f ** (exponent / 2.0)
    x = np.fft.irfft(spec, n=n)
    return (x / (np.sqrt(np.mean(x * x)) + 1e-12)).astype(np.float32)


def warp_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster: shifts pitch and formants (a vocal-tract-length change) and tempo."""
    n = fast_fft_len(x.shape[0])
    m = fast_fft_len(max(1, int(round(n / factor))))
    spec = np.fft.rfft(x.astype(np.float64), n=n)
    out = np.zeros(m // 2 + 1, dtype=np.complex128)
    keep = min(spec.shape[0], out.shape[0])
    out[:keep] = spec[:keep]
    y = np.fft.irfft(out, n=m) * (m / n)
    return y[: int(round(x.shape[0] * m / n))].astype(np.float32)


def stretch_tempo(x: np.ndarray, factor: float, sample_rate: int = 16000) -> np.ndarray:
    """``x`` said ``factor`` times as long at the same pitch (a phase vocoder: librosa, 32 ms frames, 8 ms hop)."""
    import librosa

    n_fft = max(16, int(0.032 * sample_rate))
    if x.shape[0] < n_fft or factor == 1.0:
        return x.astype(np.float32)
    return librosa.effects.time_stretch(x.astype(np.float32), rate=1.0 / factor, n_fft=n_fft, hop_length=n_fft // 4).astype(np.float32)


def shift_pitch(x: np.ndarray, semitones: float, sample_rate: int = 16000) -> np.ndarray:
    """``x`` with pitch and formants moved by ``semitones`` at the same tempo (a higher or lower voice saying the same
    thing as fast): ``stretch_tempo`` to ``2 ** (semitones / 12)`` times the length, then ``warp_speed`` back to it.
    Same length as ``x`` within a sample."""
    f = 2.0 ** (semitones / 12.0)
    if x.shape[0] < max(16, int(0.032 * sample_rate)) or f == 1.0:
        return x.astype(np.float32)
    return warp_speed(stretch_tempo(x, f, sample_rate), f)


def random_eq(x: np.ndarray, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """A smooth random EQ curve (+-9 dB at log-spaced knots) with random band limits (phone, cheap mic)."""
    spec = np.fft.rfft(x)
    f = np.linspace(0.0, sample_rate / 2.0, spec.shape[0])
    knots_hz = np.geomspace(60.0, sample_rate / 2.0, 8)
    gains_db = rng.uniform(-9.0, 9.0, size=knots_hz.shape[0])
    curve_db = np.interp(np.log(np.maximum(f, 1.0)), np.log(knots_hz), gains_db)
    lo = rng.uniform(0.0, 300.0)
    hi = rng.uniform(3400.0, sample_rate / 2.0)
    curve = 10.0 ** (curve_db / 20.0) / (1.0 + (lo / np.maximum(f, 1.0)) ** 4) / (1.0 + (f / hi) ** 8)
    return np.fft.irfft(spec * curve, n=x.shape[0]).astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """Convolve with a synthetic room: a direct path plus exponentially decaying noise (RT60 0.1-0.9 s)."""
    rt60 = rng.uniform(0.1, 0.9)
    n_ir = int(rt60 * sample_rate)
    t = np.arange(n_ir) / sample_rate
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60)
    ir[: int(0.002 * sample_rate)] = 0.0
    ir *= rng.uniform(0.1, 0.6) / (np.sqrt(np.sum(ir * ir)) + 1e-12)
    ir[0] = 1.0
    n = x.shape[0] + n_ir - 1
    nfft = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(ir, nfft), nfft)[: x.shape[0]]
    peak = np.max(np.abs(y)) + 1e-12
    return (y * (np.max(np.abs(x)) / peak)).astype(np.float32)


def room_response(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` as heard through a room impulse response (same length, same peak level)."""
    h = np.trim_zeros(rir, "b")
    lead = int(np.argmax(np.abs(h) > 0.1 * np.max(np.abs(h))))  # keep the direct path where the dry onset was
    n = x.shape[0] + h.shape[0] - 1
    nfft = fast_fft_len(n)
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[lead : lead + x.shape[0]]
    return (y * (np.max(np.abs(x)) / (np.max(np.abs(y)) + 1e-12))).astype(np.float32)


def _noise(n: int, rng: np.random.Generator, cfg: AugmentConfig, babble: list[np.ndarray] | None,
           backgrounds: list[np.ndarray] | None) -> np.ndarray:
    """One noise draw: a real recording, coloured noise, or babble of other utterances."""
    if backgrounds and rng.random() < cfg.p_background:
        b = backgrounds[int(rng.integers(len(backgrounds)))]
        if b.shape[0] > n:
            start = int(rng.integers(0, b.shape[0] - n + 1))
            return b[start : start + n].astype(np.float32)
        return fit_to_length(b, n, rng)
    kind = int(rng.integers(0, 4 if babble else 3))
    if kind < 3:
        return colored_noise(n, float(kind), rng)
    picks = [babble[int(i)] for i in rng.integers(0, len(babble), size=int(rng.integers(2, 6)))]  # type: ignore[index]
    return np.sum([fit_to_length(b, n, rng) for b in picks], axis=0).astype(np.float32)


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    ps = float(np.mean(x * x)) + 1e-10
    pn = float(np.mean(noise * noise)) + 1e-10
    return (x + noise * np.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0)))).astype(np.float32)


def augment_clip(
    x: np.ndarray,
    rng: np.random.Generator,
    cfg: AugmentConfig = AugmentConfig(),
    *,
    babble: list[np.ndarray] | None = None,
    speech: bool = True,
    sample_rate: int = 16000,
    rirs: RirBank | None = None,
    backgrounds: list[np.ndarray] | None = None,
) -> np.ndarray:
    """One random view of a clip (same length). ``babble``: other utterances to mix as background talk; ``rirs``:
    simulated rooms (a room's distance also lowers the SNR: far field); ``backgrounds``: real recordings to mix in."""
    n = x.shape[0]
    y = x.astype(np.float32)
    if speech:
        y = np.trim_zeros(y)
        if cfg.p_pitch > 0 and rng.random() < cfg.p_pitch:
            y = shift_pitch(y, float(rng.uniform(*cfg.pitch_st)), sample_rate)
        if cfg.p_stretch > 0 and rng.random() < cfg.p_stretch:
            y = stretch_tempo(y, float(rng.uniform(*cfg.stretch)), sample_rate)
        y = fit_to_length(np.trim_zeros(warp_speed(y, float(rng.uniform(*cfg.speed_range)))), n, rng)
    if rng.random() < cfg.p_eq:
        y = random_eq(y, rng, sample_rate)
    snr_drop_db = 0.0
    if rirs is not None and len(rirs):
        if rng.random() < cfg.p_room:
            k = int(rng.integers(len(rirs)))
            y = room_response(y, rirs.rirs[k])
            snr_drop_db = cfg.far_field_db_per_doubling * max(0.0, float(np.log2(rirs.distance_m[k] / 0.5)))
    elif rng.random() < cfg.p_reverb:
        y = reverb(y, rng, sample_rate)
    if rng.random() < cfg.p_noise:
        noise = _noise(n, rng, cfg, babble, backgrounds)
        if speech and np.any(y):
            y = add_noise(y, noise, float(rng.uniform(*cfg.snr_db)) - snr_drop_db)
        else:
            y = y + noise * np.float32(10.0 ** (rng.uniform(-60.0, -15.0) / 20.0))
    if backgrounds and rng.random() < cfg.p_clip:
        y = np.clip(y * np.float32(10.0 ** (rng.uniform(3.0, 12.0) / 20.0) / (np.max(np.abs(y)) + 1e-9)), -1.0, 1.0)
    shift = int(rng.integers(-int(cfg.max_shift_s * sample_rate), int(cfg.max_shift_s * sample_rate) + 1))
    if shift:
        y = np.roll(y, shift)
        if shift > 0:
            y[:shift] = 0.0
        else:
            y[shift:] = 0.0
    peak = float(np.max(np.abs(y))) + 1e-9
    target = 10.0 ** (rng.uniform(*cfg.gain_db) / 20.0)
    if speech or peak > target:
        y = y * np.float32(target / peak)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def field_view(x: np.ndarray, onset_s: float, offset_s: float, rng: np.random.Generator, *, rirs: RirBank | None = None,
               backgrounds: list[np.ndarray] | None = None, snr_db: tuple[float, float] = (5.0, 25.0), far_field_db_per_doubling: float = 3.0,
               sample_rate: int = 16000) -> np.ndarray:
    """An annotated utterance as a device in the field might hear it (same length and timing): a random microphone
    (``random_eq``), a room (one of ``rirs``, else the synthetic ``reverb``), then noise (a real recording of
    ``backgrounds`` or coloured noise) at an SNR drawn in ``snr_db`` against the speech between ``onset_s`` and
    ``offset_s``, less ``far_field_db_per_doubling`` per doubling of the room's distance beyond 0.5 m."""
    y = random_eq(x.astype(np.float32), rng, sample_rate)
    drop_db = 0.0
    if rirs is not None and len(rirs):
        k = int(rng.integers(len(rirs)))
        y = room_response(y, rirs.rirs[k])
        drop_db = far_field_db_per_doubling * max(0.0, float(np.log2(rirs.distance_m[k] / 0.5)))
    else:
        y = reverb(y, rng, sample_rate)
    speech = y[int(onset_s * sample_rate) : max(int(offset_s * sample_rate), int(onset_s * sample_rate) + 1)]
    if not np.any(speech):  # an annotation past the end or over silence: the level of the whole clip
        speech = y
    if backgrounds and rng.random() < 0.5:
        b = backgrounds[int(rng.integers(len(backgrounds)))]
        start = int(rng.integers(0, max(1, b.shape[0] - y.shape[0] + 1)))
        noise = fit_to_length(b[start : start + y.shape[0]], y.shape[0], rng)
    else:
        noise = colored_noise(y.shape[0], float(rng.integers(0, 3)), rng)
    ps = float(np.mean(speech * speech)) + 1e-10
    pn = float(np.mean(noise * noise)) + 1e-10
    snr = float(rng.uniform(*snr_db)) - drop_db
    y = y + noise * np.float32(np.sqrt(ps / (pn * 10.0 ** (snr / 10.0))))
    peak = float(np.max(np.abs(y)))
    return (y / peak * np.float32(0.9) if peak > 0.9 else y).astype(np.float32)
