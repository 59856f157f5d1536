from dataclasses import replace

import numpy as np
import pytest

from edgekd.data.augment import AugmentConfig, add_noise, augment_clip, colored_noise, field_view, fit_to_length, shift_pitch, stretch_tempo, warp_speed


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


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[0])))
    return float(np.argmax(spec) * 16000 / x.shape[0])


@pytest.mark.parametrize("semitones", [3.0, 6.0])
def test_shift_pitch_raises_the_pitch_and_keeps_the_tempo(semitones: float) -> None:
    x = _speech_like()  # 220 Hz from 0.25 s to 0.75 s
    y = shift_pitch(x, semitones)
    assert y.shape[0] == pytest.approx(x.shape[0], rel=0.01)
    assert _peak_hz(y[: x.shape[0]]) == pytest.approx(220 * 2 ** (semitones / 12), rel=0.02)
    loud = np.flatnonzero(np.abs(y) > 0.1 * np.max(np.abs(y)))  # the tone still spans ~0.5 s (a plain resample: 0.35 s at +6)
    assert (loud[-1] - loud[0]) / 16000 == pytest.approx(0.5 * (np.hanning(8000) > 0.1).mean(), abs=0.03)


def test_pitch_views_only_when_asked() -> None:
    """``p_pitch`` 0 (the default) draws nothing, so the views stay what they were; 1 shifts every speech view."""
    x = _speech_like()
    plain = augment_clip(x, np.random.default_rng(5))
    assert np.array_equal(plain, augment_clip(x, np.random.default_rng(5), AugmentConfig(p_pitch=0.0)))
    cfg = replace(AugmentConfig(), p_pitch=1.0, pitch_st=(5.0, 5.0), speed_range=(1.0, 1.0), p_eq=0.0, p_reverb=0.0, p_noise=0.0, max_shift_s=0.0)
    quiet = replace(cfg, p_pitch=0.0)
    shifted, plain = (_peak_hz(augment_clip(x, np.random.default_rng(6), c)) for c in (cfg, quiet))
    assert shifted == pytest.approx(2 ** (5 / 12) * plain, rel=0.02)


@pytest.mark.parametrize("factor", [1.2, 1.4])
def test_stretch_tempo_makes_it_longer_at_the_same_pitch(factor: float) -> None:
    x = _speech_like()  # 220 Hz from 0.25 s to 0.75 s
    y = stretch_tempo(x, factor)
    assert y.shape[0] == pytest.approx(factor * x.shape[0], rel=0.01)
    assert _peak_hz(y) == pytest.approx(220, rel=0.02)
    loud = np.flatnonzero(np.abs(y) > 0.1 * np.max(np.abs(y)))
    assert (loud[-1] - loud[0]) / 16000 == pytest.approx(factor * 0.5 * (np.hanning(8000) > 0.1).mean(), abs=0.03)


def test_stretched_views_only_when_asked() -> None:
    """``p_stretch`` 0 (the default) draws nothing; 1 slows every speech view, and a view longer than the clip is
    centre-cut to its length."""
    x = _speech_like()
    assert np.array_equal(augment_clip(x, np.random.default_rng(5)), augment_clip(x, np.random.default_rng(5), AugmentConfig(p_stretch=0.0)))
    cfg = replace(AugmentConfig(), p_stretch=1.0, stretch=(1.5, 1.5), speed_range=(1.0, 1.0), p_eq=0.0, p_reverb=0.0, p_noise=0.0, max_shift_s=0.0)
    spans = []
    for c in (cfg, replace(cfg, p_stretch=0.0)):
        y = augment_clip(x, np.random.default_rng(6), c)
        assert y.shape == x.shape and _peak_hz(y) == pytest.approx(220, rel=0.02)
        loud = np.flatnonzero(np.abs(y) > 0.1 * np.max(np.abs(y)))
        spans.append((loud[-1] - loud[0]) / 16000)
    assert spans[0] == pytest.approx(1.5 * spans[1], rel=0.08)


def test_feature_views_follow_the_augmentation(tiny_data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The default augmentation keeps the cached views (same key); a pitch shift makes other views under another key,
    and the set records it, so the teacher's aligned set (``aligned_feature_set``) is made of the same shifted audio."""
    from edgekd.data import KWS12_LABELS
    from edgekd.train.features import build_feature_set

    def views(augment: AugmentConfig | None):  # type: ignore[no-untyped-def]
        return build_feature_set(tiny_data, KWS12_LABELS, "train", views=1, workers=1, cache_dir=tmp_path, augment=augment)

    plain, default = views(None), views(AugmentConfig())
    shifted = views(AugmentConfig(p_pitch=1.0))
    assert default.key == plain.key and np.array_equal(default.x, plain.x)
    assert shifted.key != plain.key and shifted.x.shape == plain.x.shape and not np.allclose(shifted.x, plain.x)
    assert shifted.spec is not None and shifted.spec["augment"] == AugmentConfig(p_pitch=1.0)


def _utterance() -> np.ndarray:
    """3 s: silence, a voiced-like second from 1.0 to 2.0 s, silence."""
    t = np.arange(48000) / 16000
    x = np.zeros(48000, np.float32)
    seg = slice(16000, 32000)
    x[seg] = (0.3 * (np.sin(2 * np.pi * 180 * t[seg]) + 0.5 * np.sin(2 * np.pi * 720 * t[seg]) + 0.3 * np.sin(2 * np.pi * 1900 * t[seg]))
              * np.hanning(16000)).astype(np.float32)
    return x


def measured_snr_db(y: np.ndarray) -> float:
    """The speech second's power over the noise before it (0.1-0.9 s), as an SNR in dB."""
    return float(10 * np.log10(np.mean(y[16000:32000] ** 2) / np.mean(y[1600:14400] ** 2) - 1.0))


def test_field_view_keeps_length_and_timing_and_sets_the_snr_against_the_speech() -> None:
    x = _utterance()
    views = [field_view(x, 1.0, 2.0, np.random.default_rng(s), snr_db=(10.0, 10.0)) for s in range(12)]
    assert all(v.shape == x.shape and v.dtype == np.float32 and np.max(np.abs(v)) <= 0.9 + 1e-6 for v in views)
    assert len({v.tobytes() for v in views}) == 12
    np.testing.assert_array_equal(views[3], field_view(x, 1.0, 2.0, np.random.default_rng(3), snr_db=(10.0, 10.0)))
    # the noise level is set against the speech second, not the whole clip (two seconds of it silent): ~10 dB, not ~5
    assert np.median([measured_snr_db(v) for v in views]) == pytest.approx(10.0, abs=1.5)
    quiet = [measured_snr_db(field_view(x, 1.0, 2.0, np.random.default_rng(s), snr_db=(30.0, 30.0))) for s in range(12)]
    assert np.median(quiet) == pytest.approx(30.0, abs=1.5)
    # the room's synthetic reverb rings on after the speech and never before it
    assert np.mean(views[0][32000:33600] ** 2) > 2 * np.mean(views[0][1600:14400] ** 2)
