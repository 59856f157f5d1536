"""Frequency warping of log-mel windows (a vocal-tract-length perturbation on features): each row's spectrum scaled
in frequency by its own factor, read back at the mel bands' centres by linear interpolation along the mel axis.

Synthesized voices cover fewer vocal tracts than people have; scaling the frequency axis by a few percent moves a
voice's formants as a shorter or longer vocal tract would (Jaitly and Hinton, 2013). Training only: the band a row
reads for band ``m`` is the one at ``centre_hz[m] / factor`` (factor > 1 moves energy up, as a shorter vocal tract
does), clamped to the first and last band.
"""

from __future__ import annotations

import numpy as np
import torch

from edgekd.runtime.frontend import FrontendParams, hz_to_mel, mel_to_hz

__all__ = ["band_positions", "warp_mels"]


def band_positions(p: FrontendParams, factors: np.ndarray) -> np.ndarray:
    """``(B, n_mels)`` fractional band index that each output band reads, for spectra scaled by ``factors`` ``(B,)``."""
    mel_pts = np.linspace(hz_to_mel(np.array(p.fmin_hz)), hz_to_mel(np.array(p.fmax_hz)), p.n_mels + 2)
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
