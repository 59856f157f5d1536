"""Augmentations of log-mel windows during training, drawn per row (the exported model never sees them).

- ``warp_mels``: frequency warping, a vocal-tract-length perturbation on features. Synthesized voices cover fewer
  vocal tracts than people have; scaling the frequency axis by a few percent moves a voice's formants as a shorter or
  longer vocal tract would (Jaitly and Hinton, 2013). The band a row reads for band ``m`` is the one at
  ``centre_hz[m] / factor`` (factor > 1 moves energy up, as a shorter vocal tract does), by linear interpolation along
  the mel axis, clamped to the first and last band.
- ``tilt_mels``: a random smooth equaliser, the microphone and channel the synthesized voices never went through. A
  gain per band is a constant added to its log power, so a sum of low cosines across the bands (each weight drawn
  within +-``max_db``) is a smooth EQ curve: tilt, bass or treble shelf, presence bump.
"""

from __future__ import annotations

import numpy as np
import torch

from edgekd.runtime.frontend import FrontendParams, hz_to_mel, mel_points, mel_to_hz

__all__ = ["band_positions", "warp_mels", "eq_curves", "tilt_mels"]


def band_positions(p: FrontendParams, factors: np.ndarray) -> np.ndarray:
    """``(B, n_mels)`` fractional band index that each output band reads, for spectra scaled by ``factors`` ``(B,)``."""
    mel_pts = mel_points(p)
    centres = mel_pts[1:-1]
    src = hz_to_mel(mel_to_hz(centres)[None, :] / np.asarray(factors, dtype=np.float64)[:, None])
    return np.clip((src - centres[0]) / (mel_pts[1] - mel_pts[0]), 0.0, p.n_mels - 1)


def warp_mels(x: torch.Tensor, factors: np.ndarray, p: FrontendParams | None = None) -> torch.Tensor:
    """Log-mel windows ``x`` ``(B, T, n_mels)`` with each row's frequency axis scaled by ``factors[b]`` (1: unchanged)."""
    b, _, m = x.shape
    pos = torch.from_numpy(band_positions(p or FrontendParams(n_mels=m), factors).astype(np.float32)).to(x.device)
    lo = pos.floor().long().clamp(max=m - 1)
    hi = (lo + 1).clamp(max=m - 1)
    w = (pos - lo.to(pos.dtype))[:, None, :]
    take = lambda idx: torch.gather(x, 2, idx[:, None, :].expand(b, x.shape[1], m))  # noqa: E731
    return take(lo) * (1 - w) + take(hi) * w


EQ_TERMS = 3  # cosines of the EQ curve: tilt, a bump in the middle, a wiggle


def eq_curves(weights_db: np.ndarray, n_mels: int) -> np.ndarray:
    """``(B, n_mels)`` log-power offsets (natural log) of the EQ curves whose cosine weights (dB) are ``weights_db``
    ``(B, EQ_TERMS)``: band ``m`` gets ``sum_k w_k cos(pi k (m + 0.5) / n_mels)`` dB."""
    k = np.arange(1, weights_db.shape[1] + 1)[:, None]
    basis = np.cos(np.pi * k * (np.arange(n_mels)[None, :] + 0.5) / n_mels)
    return (weights_db @ basis) * (np.log(10.0) / 10.0)


def tilt_mels(x: torch.Tensor, weights_db: np.ndarray) -> torch.Tensor:
    """Log-mel windows ``x`` ``(B, T, n_mels)`` through each row's EQ curve (``eq_curves``); zero weights: unchanged."""
    curve = torch.from_numpy(eq_curves(weights_db, x.shape[2]).astype(np.float32)).to(x.device)
    return x + curve[:, None, :]
