"""Augmentations of log-mel windows (``edgekd.train.mel_augment``) against the frontend itself: a tone's log-mel
warped by a factor looks like the log-mel of the tone at that factor times its frequency; an EQ curve is the log-mel
of the audio through that gain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
from edgekd.train.mel_augment import EQ_TERMS, band_positions, eq_curves, tilt_mels, warp_mels

SR = 16000


def _tone_mels(hz: float) -> torch.Tensor:
    t = np.arange(SR) / SR
    return torch.from_numpy(LogMelFrontend(FrontendParams()).features((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)))


@pytest.mark.parametrize(("hz", "factor"), [(500.0, 1.12), (1000.0, 0.9), (2500.0, 1.1), (4000.0, 0.85)])
def test_a_warped_tone_peaks_where_the_scaled_tone_does(hz: float, factor: float) -> None:
    x = _tone_mels(hz)[None]
    warped = warp_mels(x, np.array([factor]))[0].mean(0)
    scaled = _tone_mels(hz * factor).mean(0)
    assert int(warped.argmax()) == int(scaled.argmax())
    assert int(warped.argmax()) != int(x[0].mean(0).argmax())  # the warp moved it


def test_factor_one_is_the_identity_and_each_row_has_its_own_factor() -> None:
    x = torch.randn(3, 7, 40)
    assert torch.equal(warp_mels(x, np.ones(3)), x)
    y = warp_mels(x, np.array([1.0, 1.1, 0.9]))
    assert torch.equal(y[0], x[0]) and not torch.allclose(y[1], x[1]) and not torch.allclose(y[2], y[1])


def test_band_positions_are_monotonic_and_stay_inside_the_bands() -> None:
    pos = band_positions(FrontendParams(), np.array([0.8, 1.0, 1.2]))
    assert pos.shape == (3, 40)
    assert np.all(np.diff(pos, axis=1) >= 0) and pos.min() >= 0 and pos.max() <= 39
    assert np.allclose(pos[1], np.arange(40))
    assert np.all(pos[0] >= pos[1]) and np.all(pos[2] <= pos[1])  # factor < 1 reads higher bands (moves energy down)


def test_an_eq_curve_is_a_gain_in_db_per_band() -> None:
    """A tone 6 dB louder has log-mels 6 dB higher; so does a flat-band weight pattern read back through eq_curves."""
    quiet, loud = _tone_mels(1000.0), _tone_mels(1000.0) + np.log(10 ** 0.6)  # +6 dB of power
    t = np.arange(SR) / SR
    louder = torch.from_numpy(LogMelFrontend(FrontendParams()).features((2 * 0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)))
    band = int(quiet.mean(0).argmax())
    assert float((louder - quiet)[:, band].mean()) == pytest.approx(float((loud - quiet)[:, band].mean()), abs=0.02)
    w = np.array([[6.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    curves = eq_curves(w, 40) * 10 / np.log(10.0)  # back to dB
    assert curves.shape == (2, 40) and np.allclose(curves[1], 0.0)
    assert curves[0, 0] == pytest.approx(6.0, abs=0.05) and curves[0, -1] == pytest.approx(-6.0, abs=0.05)  # a tilt: +6 dB low, -6 dB high
    assert np.all(np.diff(curves[0]) < 0)
    x = torch.randn(2, 5, 40)
    y = tilt_mels(x, w)
    assert torch.equal(y[1], x[1]) and torch.allclose(y[0] - x[0], torch.from_numpy(eq_curves(w, 40)[0].astype(np.float32)).expand(5, 40))
    assert EQ_TERMS == 3
