"""SED metrics on hand-worked cases (every expected number below was counted by hand from the definitions)."""

from __future__ import annotations

import pytest

from edgekd.eval.sed_metrics import event_based, segment_based
from edgekd.eval.wakeword import Annotation as E

LABELS = ("bell", "door", "glass")


def test_event_collars_onset_and_offset() -> None:
    ref = [E("a", 1.0, 2.0, "bell"), E("a", 5.0, 10.0, "door")]
    est = [
        E("a", 1.2, 2.2, "bell"),   # onset +0.2 (at the collar), offset +0.2 (collar 0.2) -> match
        E("a", 5.1, 11.0, "door"),  # onset ok; offset +1.0 = 20% of 5 s -> match
    ]
    r = event_based(ref, est, LABELS)
    assert r["overall"]["tp"] == 2 and r["overall"]["fp"] == 0 and r["error_rate"] == 0.0
    est_bad = [E("a", 1.25, 2.0, "bell"), E("a", 5.0, 11.1, "door")]  # onset 0.25 > 0.2; offset 1.1 > 1.0
    r = event_based(ref, est_bad, LABELS)
    assert (r["overall"]["tp"], r["overall"]["fp"], r["overall"]["fn"]) == (0, 2, 2)
    assert r["substitutions"] == 0 and r["error_rate"] == pytest.approx((0 + 2 + 2) / 2)


def test_event_matching_is_one_to_one_and_maximal() -> None:
    # two refs, two ests; greedy (first est to first ref) would leave one unmatched, the maximal matching takes both
    ref = [E("a", 1.0, 1.5, "bell"), E("a", 1.15, 1.6, "bell")]
    est = [E("a", 1.1, 1.55, "bell"), E("a", 0.85, 1.45, "bell")]
    r = event_based(ref, est, LABELS)
    assert r["overall"]["tp"] == 2
    # one est cannot match two refs
    r = event_based(ref, est[:1], LABELS)
    assert (r["overall"]["tp"], r["overall"]["fn"]) == (1, 1)


def test_event_substitution_error_rate_and_macro_f1() -> None:
    ref = [E("a", 1.0, 2.0, "bell"), E("a", 4.0, 5.0, "door"), E("b", 0.5, 1.0, "glass")]
    est = [E("a", 1.0, 2.0, "bell"), E("a", 4.0, 5.0, "glass"), E("b", 3.0, 3.5, "glass")]
    r = event_based(ref, est, LABELS)
    # bell: TP 1; door: FN 1; glass: FP 2 (a 4-5 wrong label, b 3.0 wrong time), FN 1 (b 0.5)
    assert (r["overall"]["tp"], r["overall"]["fp"], r["overall"]["fn"]) == (1, 2, 2)
    assert r["substitutions"] == 1 and r["deletions"] == 1 and r["insertions"] == 1
    assert r["error_rate"] == pytest.approx(3 / 3)
    assert r["overall"]["f1"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 2))
    assert r["macro_f1"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)


def test_segment_based_counts() -> None:
    ref = [E("a", 0.2, 1.5, "bell"), E("a", 2.5, 2.8, "door")]  # bell in segments 0,1; door in segment 2
    est = [E("a", 0.9, 1.2, "bell"), E("a", 2.1, 2.4, "glass")]  # bell in 0,1; glass in 2
    r = segment_based(ref, est, LABELS, durations={"a": 4.0})
    # 4 segments; bell TP 2; segment 2: door FN, glass FP -> one substitution
    assert (r["overall"]["tp"], r["overall"]["fp"], r["overall"]["fn"]) == (2, 1, 1)
    assert (r["substitutions"], r["deletions"], r["insertions"]) == (1, 0, 0)
    assert r["error_rate"] == pytest.approx(1 / 3)
    assert r["class_wise"]["bell"]["f1"] == 1.0


def test_event_ending_exactly_on_a_segment_boundary_does_not_spill() -> None:
    r = segment_based([E("a", 0.0, 1.0, "bell")], [E("a", 0.5, 2.0, "bell")], LABELS, durations={"a": 3.0})
    assert (r["overall"]["tp"], r["overall"]["fp"], r["overall"]["fn"]) == (1, 1, 0)


def _random_events(rng: object, files: list[str], n: int, dur: float) -> list[E]:
    import numpy as np

    assert isinstance(rng, np.random.Generator)
    out = []
    for _ in range(n):
        f = files[int(rng.integers(len(files)))]
        on = float(rng.uniform(0.0, dur - 2.0))
        out.append(E(f, on, on + float(rng.uniform(0.1, 2.0)), LABELS[int(rng.integers(len(LABELS)))]))
    return out


def _jitter(rng: object, events: list[E], dur: float) -> list[E]:
    """System events near the references (some within the collars, some not), some relabelled, plus insertions."""
    import numpy as np

    assert isinstance(rng, np.random.Generator)
    out = []
    for e in events:
        if rng.random() < 0.15:
            continue  # a deletion
        on = max(0.0, e.onset_s + float(rng.normal(0, 0.15)))
        off = min(dur, max(on + 0.05, e.offset_s + float(rng.normal(0, 0.3))))
        lab = LABELS[int(rng.integers(len(LABELS)))] if rng.random() < 0.2 else e.label
        out.append(E(e.filename, on, off, lab))
    return out


def test_metrics_agree_with_sed_eval_on_a_random_fixture() -> None:
    """The same reference/system events scored by sed_eval 0.2.1 (the DCASE reference implementation), file by file."""
    import numpy as np

    sed_eval = pytest.importorskip("sed_eval", reason="sed_eval is in the dev extra (make test installs it); without it there is no cross-check")
    import dcase_util

    rng = np.random.default_rng(7)
    files, dur = [f"f{i}.wav" for i in range(6)], 20.0
    ref = _random_events(rng, files, 60, dur)
    est = _jitter(rng, ref, dur) + _random_events(rng, files, 12, dur)
    ours_ev = event_based(ref, est, LABELS)
    ours_seg = segment_based(ref, est, LABELS, durations=dict.fromkeys(files, dur))

    def container(events: list[E], f: str) -> object:
        return dcase_util.containers.MetaDataContainer(
            [{"filename": e.filename, "event_onset": e.onset_s, "event_offset": e.offset_s, "event_label": e.label} for e in events if e.filename == f])

    ev = sed_eval.sound_event.EventBasedMetrics(list(LABELS), t_collar=0.2, percentage_of_length=0.2, event_matching_type="optimal")
    seg = sed_eval.sound_event.SegmentBasedMetrics(list(LABELS), time_resolution=1.0)
    for f in files:
        ev.evaluate(container(ref, f), container(est, f))
        seg.evaluate(container(ref, f), container(est, f))
    theirs_ev, theirs_seg = ev.results(), seg.results()
    assert ours_ev["overall"]["tp"] > 10 and ours_ev["overall"]["fp"] > 5  # the fixture exercises matches and misses
    assert ours_ev["overall"]["f1"] == pytest.approx(theirs_ev["overall"]["f_measure"]["f_measure"], abs=1e-9)
    assert ours_ev["error_rate"] == pytest.approx(theirs_ev["overall"]["error_rate"]["error_rate"], abs=1e-9)
    assert ours_ev["substitutions"] / len(ref) == pytest.approx(theirs_ev["overall"]["error_rate"]["substitution_rate"], abs=1e-9)
    for lab in LABELS:
        assert ours_ev["class_wise"][lab]["f1"] == pytest.approx(theirs_ev["class_wise"][lab]["f_measure"]["f_measure"], abs=1e-9), lab
    assert ours_seg["overall"]["f1"] == pytest.approx(theirs_seg["overall"]["f_measure"]["f_measure"], abs=1e-9)
    assert ours_seg["error_rate"] == pytest.approx(theirs_seg["overall"]["error_rate"]["error_rate"], abs=1e-9)
    for lab in LABELS:
        assert ours_seg["class_wise"][lab]["f1"] == pytest.approx(theirs_seg["class_wise"][lab]["f_measure"]["f_measure"], abs=1e-9), lab


def test_psds1_of_perfect_late_and_noisy_scores() -> None:
    """PSDS through sed_scores_eval: 1 for scores that are exactly the references, lower when every score rises
    half an event late (intersection 0.5 < DTC/GTC 0.7), lower still with false-alarm bumps."""
    import numpy as np

    pytest.importorskip("sed_scores_eval", reason="the psds extra (make test installs it); without it there is no PSDS")
    from edgekd.eval.sed_metrics import psds1

    hop, files = 0.04, [f"f{i}.wav" for i in range(8)]
    ref = [E(f, 1.0 + i % 3, 2.0 + i % 3, LABELS[i % 3]) for i, f in enumerate(files)] + [E(f, 6.0, 7.2, "door") for f in files]
    ref.append(E("f0.wav", 6.8, 8.0, "door"))  # overlaps f0's 6.0-7.2 door: scored as one 6.0-8.0 event
    durations = dict.fromkeys(files, 10.0)

    def probs(late: float = 0.0, bumps: bool = False) -> dict[str, np.ndarray]:
        out = {}
        for f in files:
            p = np.full((250, len(LABELS)), 0.01)
            for r in ref:
                if r.filename == f:
                    shift = late * (r.offset_s - r.onset_s)
                    p[round((r.onset_s + shift) / hop) : round((r.offset_s + shift) / hop), LABELS.index(r.label)] = 0.9
            if bumps:
                p[200:215, LABELS.index("glass")] = 0.95  # a false alarm above every true score
            out[f] = p
        return out

    perfect = psds1(probs(), hop, ref, LABELS, durations)
    late = psds1(probs(late=0.5), hop, ref, LABELS, durations)
    noisy = psds1(probs(bumps=True), hop, ref, LABELS, durations)
    assert perfect == pytest.approx(1.0, abs=1e-6)
    assert late < 0.5 and noisy < perfect
    # one class never found: with the class-spread penalty (alpha_st 1) PSDS1 falls further than the plain mean
    blind = probs()
    for p in blind.values():
        p[:, LABELS.index("glass")] = 0.01
    plain, penalised = (psds1(blind, hop, ref, LABELS, durations, alpha_st=a) for a in (0.0, 1.0))
    assert penalised < plain < perfect
