import numpy as np
import pytest

from edgekd.data.augment import add_noise, augment_clip, colored_noise, fit_to_length, warp_speed


def _speech_like(n: int = 16000) -> np.ndarray:
    t = np.arange(n) / 16000
    x = np.zeros(n, np.float32)
    x[4000:12000] = (0.5 * np.sin(2 * np.pi * 220 * t[4000:12000]) * np.hanning(8000)).astype(np.float32)
    return x


def test_add_noise_hits_the_requested_snr() -> None:
    rng = np.random.default_rng(0)
    x = _speech_like()
    noise = colored_noise(16000, 1.0, rng)
    y = add_noise(x, noise, 10.0)
    snr = 10 * np.log10(np.mean(x**2) / np.mean((y - x) ** 2))
    assert snr == pytest.approx(10.0, abs=0.01)


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_colored_noise_has_unit_rms_and_the_right_slope(exponent: float) -> None:
    x = colored_noise(1 << 16, exponent, np.random.default_rng(1))
    assert np.sqrt(np.mean(x**2)) == pytest.approx(1.0, rel=1e-6)
    p = np.abs(np.fft.rfft(x)) ** 2
    low, high = p[100:200].mean(), p[10000:20000].mean()
    assert np.log10(low / high) == pytest.approx(exponent * np.log10(15000 / 150), abs=0.4)


def test_warp_speed_changes_duration() -> None:
    assert warp_speed(np.ones(16000, np.float32), 1.25).shape[0] == pytest.approx(12800, abs=40)


def test_fit_to_length_pads_and_cuts() -> None:
    assert fit_to_length(np.ones(100, np.float32), 160).shape == (160,)
    assert fit_to_length(np.arange(200, dtype=np.float32), 100)[0] == 50.0


def test_augmented_views_are_valid_and_differ() -> None:
    rng = np.random.default_rng(2)
    x = _speech_like()
    views = [augment_clip(x, rng, babble=[x[4000:12000]]) for _ in range(8)]
    for v in views:
        assert v.shape == x.shape and np.all(np.isfinite(v)) and np.max(np.abs(v)) <= 1.0
    assert not np.allclose(views[0], views[1])
    silence = [augment_clip(np.zeros(16000, np.float32), rng, speech=False) for _ in range(20)]
    rms = [float(np.sqrt(np.mean(s**2))) for s in silence]
    assert all(np.all(np.isfinite(s)) and np.max(np.abs(s)) <= 1.0 for s in silence)
    assert min(rms) < 0.01 and np.median(rms) < 0.1  # noise floors, not loud signals
