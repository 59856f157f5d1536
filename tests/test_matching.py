"""The one definition of hit windows, smoothing, firing and matching (edgekd.eval.matching)."""

import numpy as np
import pytest

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


def test_a_gated_postprocessor_asks_the_verifier_on_the_first_and_every_nth_open_inference() -> None:
    """Two stages: a keyword fires only when its gate is open and the verifier's score reaches the threshold; of a
    run of open inferences the first and every ``verify_every``-th ask (``verified_hops`` says which), none during the
    refractory time; a gate that never opens never asks."""
    from edgekd.runtime.kws_post import asks_verifier, held_open, verified_hops

    labels = ("a", "b", "_unknown_")
    cfg = KwsPostprocessConfig(stride_ms=100, smooth_ms=0, threshold=0.6, refractory_ms=1000)
    p_a = [0.1, 0.5, 0.5, 0.5, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5]  # P(a) per inference; the gate for a is 0.4
    verified = [0.1] * 10
    verified[7] = 0.9  # the verifier agrees only at inference 7
    asked: list[int] = []
    firsts: list[bool] = []  # whether each call was its opening's first (the stream then also hears an earlier second)
    post = KwsPostprocessor(labels, ("a", "b"), cfg, gates={"a": 0.4, "b": 0.99}, verifier_labels=("b", "a", "_unknown_"), verify_every=2)
    fired = []
    for i, pa in enumerate(p_a):
        def verify(first: bool, i: int = i) -> np.ndarray:
            asked.append(i)
            firsts.append(first)
            return np.array([0.0, verified[i], 1.0 - verified[i]])

        d = post.update(np.array([pa, 0.0, 1.0 - pa]), i * 100, verify)
        if d is not None:
            fired.append((d.label, d.t_ms, round(d.score, 3)))
    assert asked == [1, 3, 5, 7] and post.verifier_calls == 4  # runs 1-3 and 5-9: their 1st and 3rd; 9 is refractory
    assert firsts == [True, False, True, False]
    assert fired == [("a", 700, 0.9)]
    open_ = np.array(p_a) >= 0.4
    assert verified_hops(open_, 2).nonzero()[0].tolist() == [1, 3, 5, 7, 9]
    assert verified_hops(open_, 1).tolist() == open_.tolist() and verified_hops(np.zeros(0, bool), 2).size == 0
    # at most two calls per opening: the run 5-9 asks at 5 and 7 only; every 1 with a cap of 2: 1, 2, 5, 6
    assert verified_hops(open_, 2, 2).nonzero()[0].tolist() == [1, 3, 5, 7]
    assert verified_hops(open_, 1, 2).nonzero()[0].tolist() == [1, 2, 5, 6]
    capped = KwsPostprocessor(labels, ("a", "b"), KwsPostprocessConfig(stride_ms=100, smooth_ms=0, threshold=0.95, refractory_ms=0),
                              gates={"a": 0.4}, verifier_labels=labels, verify_every=1, verify_max_calls=2)
    asked.clear()
    for i, pa in enumerate(p_a):
        capped.update(np.array([pa, 0.0, 1.0 - pa]), i * 100, lambda first, i=i: asked.append(i) or np.array([0.5, 0.0, 0.5]))
    assert asked == verified_hops(open_, 1, 2).nonzero()[0].tolist() and capped.verifier_calls == 4
    o = np.random.default_rng(0).random(300) < 0.7  # the per-inference rule and the whole-timeline one agree
    for every, cap in ((1, None), (2, None), (2, 3), (3, 1)):
        run, want = 0, []
        for x in o:
            run = run + 1 if x else 0
            want.append(bool(x) and asks_verifier(run - 1, every, cap))
        assert verified_hops(o, every, cap).tolist() == want and sum(want) > 0
    # a gate held open two inferences after the score falls under it: the runs 1-3 and 5-9 become one, 1-9; a score
    # that opens the gate at inference 1 alone asks the verifier there and, held, again at 3, where it agrees
    assert held_open(open_, 2).nonzero()[0].tolist() == list(range(1, 10)) and held_open(open_, 0).tolist() == open_.tolist()
    assert held_open(np.array([False, True, False, False, False, False]), 2).nonzero()[0].tolist() == [1, 2, 3]
    late = [0.1, 0.5, 0.1, 0.1, 0.1, 0.1]  # the score opens the gate at 1 only; the verifier agrees at 3
    for hold, want in ((0, ([1], [])), (2, ([1, 3], [("a", 300, 0.9)]))):
        held = KwsPostprocessor(labels, ("a", "b"), cfg, gates={"a": 0.4}, verifier_labels=labels, verify_every=2, verify_hold=hold)
        asked.clear()
        fired = [d for i, pa in enumerate(late)
                 if (d := held.update(np.array([pa, 0.0, 1.0 - pa]), i * 100,
                                      lambda first, i=i: asked.append(i) or np.array([0.9 if i == 3 else 0.1, 0.0, 0.1]))) is not None]
        assert (asked, [(d.label, d.t_ms, round(d.score, 3)) for d in fired]) == want
    for hold in (1, 2, 5):  # the per-inference rule and the whole-timeline one agree with a hold too
        held = KwsPostprocessor(labels, ("a", "b"), KwsPostprocessConfig(stride_ms=100, smooth_ms=0, threshold=1.0, refractory_ms=0),
                                gates={"a": 0.4}, verifier_labels=labels, verify_every=2, verify_max_calls=3, verify_hold=hold)
        asked.clear()
        sparse = np.random.default_rng(hold).random(300) < 0.2
        for i, x in enumerate(sparse):
            held.update(np.array([0.5 if x else 0.1, 0.0, 0.5]), i * 100, lambda first, i=i: asked.append(i) or np.array([0.5, 0.0, 0.5]))
        assert asked == verified_hops(held_open(sparse, hold), 2, 3).nonzero()[0].tolist() and len(asked) > sparse.sum() // 3
    never = KwsPostprocessor(labels, ("a", "b"), cfg, gates={"a": 0.99, "b": 0.99}, verifier_labels=labels)
    assert all(never.update(np.array([0.9, 0.05, 0.05]), i * 100) is None for i in range(5)) and never.verifier_calls == 0


def test_a_verified_score_weighs_the_openings_peak_student_score() -> None:
    """``verify_peak_power``: the verified score is the verifier's posterior times the keyword's highest smoothed
    posterior since its gate opened (held open included), to that power; a closed gate forgets it; 0 is the verifier
    alone. ``opening_peaks`` is the same peak over a whole timeline."""
    from edgekd.runtime.kws_post import held_open, opening_peaks, verified_hops

    labels = ("a", "b", "_unknown_")
    p_a = [0.1, 0.5, 0.8, 0.45, 0.1, 0.1, 0.1, 0.6, 0.5, 0.1]  # gate 0.4 with a hold of 1: open 1-4 and 7-9
    assert opening_peaks(np.array(p_a), held_open(np.array(p_a) >= 0.4, 1)).tolist() == [0, 0.5, 0.8, 0.8, 0.8, 0, 0, 0.6, 0.6, 0.6]
    assert opening_peaks(np.array([0.3, 0.2]), np.array([True, True])).tolist() == [0.3, 0.3] and opening_peaks(np.zeros(0), np.zeros(0, bool)).size == 0
    got = {}
    for power in (0.0, 0.5, 2.0):
        post = KwsPostprocessor(labels, ("a", "b"), KwsPostprocessConfig(stride_ms=100, smooth_ms=0, threshold=0.3, refractory_ms=0),
                                gates={"a": 0.4}, verifier_labels=labels, verify_every=1, verify_hold=1, verify_peak_power=power)
        got[power] = [(d.t_ms, d.score) for i, pa in enumerate(p_a)
                      if (d := post.update(np.array([pa, 0.0, 1.0 - pa]), i * 100, lambda first: np.array([0.5, 0.0, 0.5]))) is not None]
    assert got[0.0] == [(t, 0.5) for t in (100, 200, 300, 400, 700, 800, 900)]  # the verifier's posterior alone
    assert got[0.5] == [(t, pytest.approx(0.5 * pk**0.5)) for t, pk in ((100, 0.5), (200, 0.8), (300, 0.8), (400, 0.8), (700, 0.6),
                                                                        (800, 0.6), (900, 0.6))]
    assert got[2.0] == [(200, pytest.approx(0.32)), (300, pytest.approx(0.32)), (400, pytest.approx(0.32))]  # 0.5 x 0.8**2; 0.5**3 < 0.3
    rng = np.random.default_rng(3)  # the per-inference rule and the whole-timeline one agree
    sc = np.clip(rng.random(400) * rng.random(400) * 1.6, 0, 0.99)
    vs = rng.random(400)
    post = KwsPostprocessor(labels, ("a", "b"), KwsPostprocessConfig(stride_ms=100, smooth_ms=0, threshold=1e-6, refractory_ms=0),
                            gates={"a": 0.3}, verifier_labels=labels, verify_every=2, verify_max_calls=3, verify_hold=2, verify_peak_power=0.25)
    fired = {i: d.score for i, x in enumerate(sc)  # every verified inference fires: its score is the verified score
             if (d := post.update(np.array([x, 0.0, 1.0 - x]), i * 100, lambda first, i=i: np.array([vs[i], 0.0, 1.0 - vs[i]]))) is not None}
    open_ = held_open(sc >= 0.3, 2)
    asked = verified_hops(open_, 2, 3).nonzero()[0]
    peaks = opening_peaks(sc, open_)
    assert sorted(fired) == asked.tolist() and len(asked) > 20 and (peaks[open_] >= 0.3).all() and (peaks[~open_] == 0).all()
    assert [fired[i] for i in asked] == pytest.approx((vs * peaks**0.25)[asked].tolist(), abs=1e-12)
