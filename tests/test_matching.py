"""The one definition of hit windows, smoothing, firing and matching (edgekd.eval.matching)."""

import numpy as np

from edgekd.eval.matching import HIT_TAIL_MS, fire, in_hit_window, match, moving_average
from edgekd.runtime.kws_post import KwsPostprocessConfig, KwsPostprocessor


def test_hit_window_includes_both_ends_and_the_tail() -> None:
    t = np.array([999, 1000, 2000 + HIT_TAIL_MS, 2001 + HIT_TAIL_MS])
    assert in_hit_window(t, 1000, 2000).tolist() == [False, True, True, False]


def test_moving_average_is_the_runtime_smoothing() -> None:
    """Replayed smoothing equals the runtime post-processor's, hop by hop (threshold 1.0 never fires)."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    labels = ("a", "b", "_unknown_", "_silence_")
    post = KwsPostprocessor(labels, ("a", "b"), KwsPostprocessConfig(stride_ms=40, smooth_ms=120, threshold=1.0))
    online = []
    for i, p in enumerate(probs):
        post.update(p, 40 * i)
        online.append(post._smoothed.copy())
    np.testing.assert_allclose(moving_average(probs[:, :2], 3), np.array(online), rtol=0, atol=1e-12)


def test_fire_debounces() -> None:
    t = np.arange(0, 3000, 100)
    s = np.zeros(t.shape[0])
    s[[3, 4, 12, 14, 25]] = 1.0
    assert t[fire(t, s, 0.5, debounce_ms=1000)].tolist() == [300, 1400, 2500]


def test_match_is_one_detection_per_phrase_of_its_own_label() -> None:
    truth = [("yes", 1000, 1500), ("no", 3000, 3400), ("yes", 5000, 5600)]
    dets = [("yes", 1600), ("yes", 2000), ("no", 2900), ("no", 4400), ("yes", 7000)]
    hit, false = match(truth, dets)
    assert hit.tolist() == [True, True, False] and false == 3  # a second "yes" in the same window, "no" too early, "yes" too late
