"""Rooms and microphones: the simulated RIR bank and the augmentation that uses it."""

from pathlib import Path

import numpy as np
import pytest

from edgekd.data.augment import augment_clip, field_view, room_response
from edgekd.data.rooms import RirBank, RoomConfig, background_recordings, rir_bank

pytest.importorskip("pyroomacoustics", reason="pyroomacoustics is not installed (the train extra)")

SMALL = RoomConfig(n_rooms=6, seed=3)


def test_bank_is_deterministic_for_a_seed_and_cached(tmp_path: Path) -> None:
    a = rir_bank(SMALL, cache_dir=tmp_path / "a")
    b = rir_bank(SMALL, cache_dir=tmp_path / "b")  # simulated again, elsewhere
    np.testing.assert_array_equal(a.rirs, b.rirs)
    files = list((tmp_path / "a").glob("rirs-*.npz"))
    assert len(files) == 1
    # the cached copy is what a second call returns (no new simulation: poison the file and see it come back)
    z = dict(np.load(files[0]))
    z["rt60_s"] = z["rt60_s"] * 0 + 7.0
    np.savez(files[0], **z)
    assert np.all(rir_bank(SMALL, cache_dir=tmp_path / "a").rt60_s == 7.0)
    other = rir_bank(RoomConfig(n_rooms=6, seed=4), cache_dir=tmp_path / "a")
    assert not np.array_equal(other.rirs[:, :2000], a.rirs[:, :2000])


def test_rooms_are_in_range_and_longer_rt60_means_a_longer_tail(tmp_path: Path) -> None:
    bank = rir_bank(RoomConfig(n_rooms=12, seed=0), cache_dir=tmp_path)
    assert bank.rirs.shape[1] <= 16000 and np.all((bank.rt60_s >= 0.1) & (bank.rt60_s <= 1.0))
    assert np.all((bank.distance_m >= 0.3) & (bank.distance_m <= 5.0))
    np.testing.assert_allclose(np.sum(bank.rirs.astype(np.float64) ** 2, axis=1), 1.0, rtol=1e-3)

    def tail_energy(r: np.ndarray) -> float:
        peak = int(np.argmax(np.abs(r)))
        return float(np.sum(r[peak + 1600 :] ** 2))  # energy 100 ms after the direct path

    order = np.argsort(bank.rt60_s)
    short, long_ = [tail_energy(bank.rirs[i]) for i in order[:3]], [tail_energy(bank.rirs[i]) for i in order[-3:]]
    assert np.mean(long_) > np.mean(short)


def test_room_response_keeps_length_onset_and_peak(tmp_path: Path) -> None:
    bank = rir_bank(SMALL, cache_dir=tmp_path)
    x = np.zeros(16000, np.float32)
    x[4000:4800] = np.sin(np.arange(800) * 0.3).astype(np.float32)
    y = room_response(x, bank.rirs[0])
    assert y.shape == x.shape and np.max(np.abs(y)) == pytest.approx(np.max(np.abs(x)), rel=1e-5)
    assert np.sum(y[:3900] ** 2) < 1e-3 * np.sum(y**2)  # nothing before the sound starts
    assert np.sum(y[4800:6000] ** 2) > 0.01 * np.sum(y**2)  # the room rings on after it


def test_augment_with_rooms_and_backgrounds_gives_valid_views(tmp_path: Path) -> None:
    bank = rir_bank(SMALL, cache_dir=tmp_path)
    recs = [np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1]
    x = np.zeros(16000, np.float32)
    x[4000:10000] = 0.5 * np.sin(np.arange(6000) * 0.05).astype(np.float32)
    views = [augment_clip(x, np.random.default_rng(i), rirs=bank, backgrounds=recs) for i in range(20)]
    assert all(v.shape == (16000,) and v.dtype == np.float32 and np.all(np.abs(v) <= 1.0) for v in views)
    assert len({v.tobytes() for v in views}) == 20
    # without a bank and recordings the old recipe is unchanged, draw for draw
    np.testing.assert_array_equal(augment_clip(x, np.random.default_rng(5)), augment_clip(x, np.random.default_rng(5), rirs=None, backgrounds=None))


def test_field_view_loses_snr_with_the_room_distance(tmp_path: Path) -> None:
    from tests.test_augment import _utterance, measured_snr_db

    bank, x = rir_bank(SMALL, cache_dir=tmp_path), _utterance()
    for k in range(len(bank)):
        one = RirBank(bank.rirs[k : k + 1], bank.rt60_s[k : k + 1], bank.distance_m[k : k + 1])
        want = 20.0 - 3.0 * max(0.0, float(np.log2(bank.distance_m[k] / 0.5)))  # 3 dB per doubling beyond 0.5 m
        got = [measured_snr_db(field_view(x, 1.0, 2.0, np.random.default_rng(s), rirs=one, snr_db=(20.0, 20.0))) for s in range(6)]
        assert np.median(got) == pytest.approx(want, abs=1.0), (k, float(bank.distance_m[k]))
    assert float(np.max(bank.distance_m)) > 2.0  # the bank has a far room, so the rule above was tested


def test_background_recordings_are_real_audio() -> None:
    recs = background_recordings(max_files=5)
    if not recs:
        pytest.skip("none of Debian's sound packages is installed (sonic-pi-samples, sound-theme-freedesktop, sound-icons, gnome-audio)")
    assert all(r.dtype == np.float32 and r.shape[0] >= 4000 and np.sqrt(np.mean(r**2)) > 1e-4 for r in recs)
