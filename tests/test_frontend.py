import numpy as np
import pytest

from edgekd.runtime.frontend import FrontendParams, LogMelFrontend


def _signal(n: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)
    x[: n // 4] *= 0.01  # a quiet stretch: frames near the floor
    return x.astype(np.float32)


def test_one_second_gives_98_frames_of_40_mels() -> None:
    f = LogMelFrontend().features(_signal())
    assert f.shape == (98, 40) and f.dtype == np.float32


def test_shorter_than_a_window_gives_no_frames() -> None:
    assert LogMelFrontend().features(np.zeros(479, np.float32)).shape == (0, 40)


def test_matches_librosa_melspectrogram() -> None:
    librosa = pytest.importorskip("librosa", reason="librosa is the reference; installed by the dev extra")
    x = _signal()
    ours = LogMelFrontend().features(x)
    # librosa centres a 480-sample window inside each 512-sample frame; 16 zeros each side line the frames up.
    ref = librosa.feature.melspectrogram(
        y=np.pad(x, 16), sr=16000, n_fft=512, hop_length=160, win_length=480, window="hann", center=False,
        power=2.0, n_mels=40, fmin=20.0, fmax=7600.0, htk=False, norm="slaney",
    ).T
    ref_log = np.log(ref + 1e-6)
    assert ref_log.shape == ours.shape
    above_floor = ref_log > np.log(1e-6) + 1.0
    assert above_floor.mean() > 0.5
    assert np.max(np.abs(ours - ref_log)[above_floor]) <= 1e-3


@pytest.mark.parametrize("chunks", [[1] * 700, [160] * 100, [7, 480, 1, 3000, 12512], [16000]])
def test_streaming_equals_batch(chunks: list[int]) -> None:
    x = _signal()
    fe = LogMelFrontend()
    batch = fe.features(x)
    out, pos = [], 0
    for c in chunks:
        out.append(fe.push(x[pos : pos + c]))
        pos += c
    out.append(fe.push(x[pos:]))
    assert np.array_equal(np.concatenate(out), batch)


def test_reset_forgets_buffered_samples() -> None:
    fe = LogMelFrontend()
    fe.push(np.ones(300, np.float32))
    fe.reset()
    x = _signal()
    assert np.array_equal(fe.push(x), fe.features(x))


def test_params_round_trip_through_a_dict() -> None:
    p = FrontendParams()
    assert FrontendParams.from_dict(p.to_dict()) == p
    assert p.num_frames(16000) == 98
