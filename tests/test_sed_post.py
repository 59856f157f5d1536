"""SED post-processing on hand-built score curves: hysteresis, median filter, merging, minimum duration, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.errors import ConfigError
from edgekd.runtime.sed_post import SedPostprocessConfig, SedStream, sed_events

LABELS = ("alarm", "door")
HOP = 20.0  # ms per frame


def curve(*segments: tuple[int, float]) -> np.ndarray:
    """A score curve from (frames, value) runs."""
    return np.concatenate([np.full(n, v) for n, v in segments])


def two(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    return np.stack([a, np.zeros_like(a) if b is None else b], axis=1)


def spans(events) -> list[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    return [(e.label, e.onset_ms, e.offset_ms) for e in events if e.offset_ms is not None]


def test_hysteresis_opens_above_onset_and_closes_below_offset() -> None:
    cfg = SedPostprocessConfig(onset_threshold=0.6, offset_threshold=0.3, median_frames=1, min_duration_ms=0, merge_gap_ms=0)
    # 10 quiet, 5 at 0.5 (between thresholds: never opens), 5 quiet, 3 at 0.7 (opens), 6 at 0.4 (stays open), 10 quiet
    p = curve((10, 0.0), (5, 0.5), (5, 0.0), (3, 0.7), (6, 0.4), (10, 0.0))
    ev = sed_events(two(p), LABELS, HOP, cfg)
    assert spans(ev) == [("alarm", 20 * HOP, 29 * HOP)]
    assert ev[0].score == pytest.approx(0.7)


def test_latency_moves_reported_times_earlier_and_stops_at_zero() -> None:
    base = dict(onset_threshold=0.6, offset_threshold=0.3, median_frames=1, min_duration_ms=0, merge_gap_ms=0)
    p = curve((2, 0.9), (8, 0.0), (4, 0.9), (6, 0.0))  # events at frames 0-2 and 10-14
    assert spans(sed_events(two(p), LABELS, HOP, SedPostprocessConfig(**base))) == [("alarm", 0, 40), ("alarm", 200, 280)]
    late = sed_events(two(p), LABELS, HOP, SedPostprocessConfig(**base, latency_ms=60), onsets=True)
    assert spans(late) == [("alarm", 0, 0), ("alarm", 140, 220)]  # the first event cannot start before the stream
    assert [e.onset_ms for e in late if e.offset_ms is None] == [0, 140]


def test_median_filter_removes_a_one_frame_spike_and_a_one_frame_dropout() -> None:
    cfg = SedPostprocessConfig(onset_threshold=0.5, offset_threshold=0.5, median_frames=3, min_duration_ms=0, merge_gap_ms=0)
    spike = curve((10, 0.0), (1, 0.9), (10, 0.0))
    assert spans(sed_events(two(spike), LABELS, HOP, cfg)) == []
    dropout = curve((5, 0.0), (6, 0.9), (1, 0.0), (6, 0.9), (5, 0.0))
    assert spans(sed_events(two(dropout), LABELS, HOP, cfg)) == [("alarm", 5 * HOP, 18 * HOP)]


def test_gap_merging_and_minimum_duration() -> None:
    p = curve((5, 0.0), (10, 0.9), (4, 0.0), (10, 0.9), (20, 0.0), (3, 0.9), (10, 0.0))
    base = dict(onset_threshold=0.5, offset_threshold=0.5, median_frames=1)
    # gap of 4 frames (80 ms) < 100 ms: merged; the 3-frame blip (60 ms) is shorter than 100 ms: dropped
    ev = sed_events(two(p), LABELS, HOP, SedPostprocessConfig(**base, min_duration_ms=100, merge_gap_ms=100))
    assert spans(ev) == [("alarm", 5 * HOP, 29 * HOP)]
    ev = sed_events(two(p), LABELS, HOP, SedPostprocessConfig(**base, min_duration_ms=0, merge_gap_ms=60))
    assert spans(ev) == [("alarm", 5 * HOP, 15 * HOP), ("alarm", 19 * HOP, 29 * HOP), ("alarm", 49 * HOP, 52 * HOP)]


def test_classes_are_independent_and_per_class_thresholds_apply() -> None:
    a = curve((5, 0.0), (10, 0.55), (5, 0.0))
    b = curve((8, 0.0), (6, 0.55), (6, 0.0))
    cfg = SedPostprocessConfig(onset_threshold=0.5, offset_threshold=0.3, thresholds={"door": [0.6, 0.3]}, median_frames=1,
                               min_duration_ms=0, merge_gap_ms=0)
    assert spans(sed_events(two(a, b), LABELS, HOP, cfg)) == [("alarm", 5 * HOP, 15 * HOP)]  # door never reaches 0.6


def test_event_still_open_at_the_end_is_closed_there() -> None:
    cfg = SedPostprocessConfig(median_frames=1, min_duration_ms=0, merge_gap_ms=0)
    assert spans(sed_events(two(curve((3, 0.0), (5, 0.9))), LABELS, HOP, cfg)) == [("alarm", 3 * HOP, 8 * HOP)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_in_any_chunks_gives_the_clip_events_and_onsets_come_first(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.clip(np.repeat(rng.random((60, 2)), rng.integers(1, 8, 60), axis=0), 0, 1)
    cfg = SedPostprocessConfig(onset_threshold=0.7, offset_threshold=0.4, median_frames=5, min_duration_ms=60, merge_gap_ms=80)
    whole = sed_events(p, LABELS, HOP, cfg, onsets=True)
    s = SedStream(LABELS, HOP, cfg)
    got, i = [], 0
    while i < p.shape[0]:
        k = int(rng.integers(1, 17))
        got += s.push(p[i : i + k])
        i += k
    got += s.finish()
    key = lambda e: (e.onset_ms, e.label, e.offset_ms is not None)  # noqa: E731
    assert sorted(got, key=key) == whole and spans(whole)
    for e in (e for e in got if e.offset_ms is not None):  # every event was announced before it closed
        assert got.index(next(o for o in got if o.offset_ms is None and o.label == e.label and o.onset_ms == e.onset_ms)) < got.index(e)


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="latency_ms"):
        SedPostprocessConfig(latency_ms=-40).validate()
    with pytest.raises(ConfigError, match="median_frames must be odd"):
        SedPostprocessConfig.from_dict({"median_frames": 4})
    with pytest.raises(ConfigError, match="offset .* <= onset"):
        SedPostprocessConfig.from_dict({"onset_threshold": 0.3, "offset_threshold": 0.5})
