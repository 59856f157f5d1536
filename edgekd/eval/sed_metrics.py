"""Sound-event detection metrics, as DCASE (and sed_eval) define them.

- **Event-based**: a system event matches a reference event of the same label when its onset is within the
  onset collar (200 ms) and its offset within max(collar, 20% of the reference event's length); matching is
  one-to-one and maximal (bipartite). Per class: TP, FP, FN -> precision, recall, F1; overall micro F1 and the
  class-wise macro F1. Error rate ER = (S + D + I) / N, where substitutions S pair unmatched reference and
  system events that would match in time under another label, D = FN - S, I = FP - S.
- **Segment-based** (1 s segments): a class is active in a segment when any of its events overlaps it; TP, FP,
  FN over (segment, class) cells; per segment S = min(FN, FP), D = max(0, FN - FP), I = max(0, FP - FN);
  ER = sum(S + D + I) / number of active reference cells.

Events are ``(filename, onset_s, offset_s, label)`` tuples (``edgekd.data.annotations.Annotation`` fits).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

__all__ = ["event_based", "segment_based", "score_events", "psds1", "Event"]


class Event(Protocol):
    filename: str
    onset_s: float
    offset_s: float
    label: str


_EPS = 1e-9  # collars are inclusive: 2.2 - 2.0 is 0.2000000000000002 in binary floating point


def _matches_time(ref: Event, est: Event, t_collar: float, pct: float) -> bool:
    if abs(est.onset_s - ref.onset_s) > t_collar + _EPS:
        return False
    return abs(est.offset_s - ref.offset_s) <= max(t_collar, pct * (ref.offset_s - ref.onset_s)) + _EPS


def _max_matching(n_ref: int, n_est: int, ok: list[list[int]]) -> list[int]:
    """A maximum bipartite matching (Kuhn's augmenting paths): ``owner[j]`` is the ref matched to est ``j`` or -1.
    ``ok[i]`` lists the est indices ref ``i`` may take."""
    owner = [-1] * n_est

    def augment(i: int, seen: list[bool]) -> bool:
        for j in ok[i]:
            if not seen[j]:
                seen[j] = True
                if owner[j] < 0 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(n_ref):
        augment(i, [False] * n_est)
    return owner


def _group(events: Iterable[Event]) -> dict[tuple[str, str], list[Event]]:
    g: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in events:
        g[(e.filename, e.label)].append(e)
    return g


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn}


def event_based(reference: Sequence[Event], estimated: Sequence[Event], labels: Sequence[str], *, t_collar: float = 0.2,
                percentage_of_length: float = 0.2) -> dict[str, Any]:
    """Event-based P/R/F1 per class and overall (micro), macro F1, and error rate."""
    ref_g, est_g = _group(reference), _group(estimated)
    per: dict[str, dict[str, int]] = {lab: {"tp": 0, "fp": 0, "fn": 0} for lab in labels}
    unmatched_ref: dict[str, list[Event]] = defaultdict(list)
    unmatched_est: dict[str, list[Event]] = defaultdict(list)
    for lab in labels:
        for fname in {k[0] for k in ref_g if k[1] == lab} | {k[0] for k in est_g if k[1] == lab}:
            r, e = ref_g.get((fname, lab), []), est_g.get((fname, lab), [])
            ok = [[j for j, ee in enumerate(e) if _matches_time(rr, ee, t_collar, percentage_of_length)] for rr in r]
            owner = _max_matching(len(r), len(e), ok)
            matched_ref = set(owner) - {-1}
            tp = len(matched_ref)
            per[lab]["tp"] += tp
            per[lab]["fp"] += len(e) - tp
            per[lab]["fn"] += len(r) - tp
            unmatched_ref[fname] += [rr for i, rr in enumerate(r) if i not in matched_ref]
            unmatched_est[fname] += [ee for j, ee in enumerate(e) if owner[j] < 0]
    subs = 0
    for fname, r in unmatched_ref.items():
        e = unmatched_est.get(fname, [])
        ok = [[j for j, ee in enumerate(e) if ee.label != rr.label and _matches_time(rr, ee, t_collar, percentage_of_length)] for rr in r]
        subs += sum(o >= 0 for o in _max_matching(len(r), len(e), ok))
    tp = sum(v["tp"] for v in per.values())
    fp = sum(v["fp"] for v in per.values())
    fn = sum(v["fn"] for v in per.values())
    n_ref = len(reference)
    class_wise = {lab: _prf(v["tp"], v["fp"], v["fn"]) for lab, v in per.items()}
    present = [lab for lab in labels if per[lab]["tp"] + per[lab]["fn"] > 0]
    return {
        "overall": _prf(tp, fp, fn),
        "macro_f1": sum(class_wise[lab]["f1"] for lab in present) / len(present) if present else 0.0,
        "error_rate": (subs + (fn - subs) + (fp - subs)) / n_ref if n_ref else math.inf,
        "substitutions": subs, "deletions": fn - subs, "insertions": fp - subs,
        "class_wise": class_wise,
        "params": {"t_collar": t_collar, "percentage_of_length": percentage_of_length},
    }


def segment_based(reference: Sequence[Event], estimated: Sequence[Event], labels: Sequence[str], *, segment_s: float = 1.0,
                  durations: dict[str, float] | None = None) -> dict[str, Any]:
    """Segment-based P/R/F1 per class and overall, and error rate. ``durations`` (s) per file sets the segment count;
    otherwise the last event's offset does."""
    ref_by: dict[str, list[Event]] = defaultdict(list)
    est_by: dict[str, list[Event]] = defaultdict(list)
    for e in reference:
        ref_by[e.filename].append(e)
    for e in estimated:
        est_by[e.filename].append(e)
    files = sorted(set(ref_by) | set(est_by) | set(durations or {}))
    per = {lab: {"tp": 0, "fp": 0, "fn": 0} for lab in labels}
    s_tot = d_tot = i_tot = n_active = 0
    for f in files:
        ends = [e.offset_s for e in (*ref_by[f], *est_by[f])]
        dur = (durations or {}).get(f, max(ends, default=0.0))
        n_seg = max(1, math.ceil(dur / segment_s - 1e-9))

        def activity(events: Sequence[Event], n_seg: int = n_seg) -> dict[str, set[int]]:
            act: dict[str, set[int]] = defaultdict(set)
            for e in events:
                first = int(math.floor(e.onset_s / segment_s))
                last = int(math.ceil(e.offset_s / segment_s - 1e-9)) - 1
                act[e.label].update(range(max(0, first), min(n_seg - 1, max(first, last)) + 1))
            return act

        ra, ea = activity(ref_by[f]), activity(est_by[f])
        for seg in range(n_seg):
            fn_seg = fp_seg = 0
            for lab in labels:
                r, e = seg in ra.get(lab, ()), seg in ea.get(lab, ())
                per[lab]["tp"] += r and e
                per[lab]["fp"] += e and not r
                per[lab]["fn"] += r and not e
                fn_seg += r and not e
                fp_seg += e and not r
                n_active += r
            s_tot += min(fn_seg, fp_seg)
            d_tot += max(0, fn_seg - fp_seg)
            i_tot += max(0, fp_seg - fn_seg)
    tp = sum(v["tp"] for v in per.values())
    fp = sum(v["fp"] for v in per.values())
    fn = sum(v["fn"] for v in per.values())
    class_wise = {lab: _prf(v["tp"], v["fp"], v["fn"]) for lab, v in per.items()}
    present = [lab for lab in labels if per[lab]["tp"] + per[lab]["fn"] > 0]
    return {
        "overall": _prf(tp, fp, fn),
        "macro_f1": sum(class_wise[lab]["f1"] for lab in present) / len(present) if present else 0.0,
        "error_rate": (s_tot + d_tot + i_tot) / n_active if n_active else math.inf,
        "substitutions": s_tot, "deletions": d_tot, "insertions": i_tot,
        "class_wise": class_wise,
        "params": {"segment_s": segment_s},
    }


def score_events(reference: Sequence[Event], events_by_file: dict[str, Iterable[Any]], labels: Sequence[str],
                 durations: dict[str, float] | None = None) -> dict[str, Any]:
    """Event- and segment-based metrics of post-processed events (``SedEvent``: ``onset_ms``, ``offset_ms``, ``label``) per file."""
    from edgekd.data.annotations import Annotation

    est = [Annotation(name, e.onset_ms / 1000.0, (e.offset_ms or e.onset_ms) / 1000.0, e.label)
           for name, events in events_by_file.items() for e in events]
    return {"event_based": event_based(reference, est, labels), "segment_based": segment_based(reference, est, labels, durations=durations),
            "events_estimated": len(est), "events_reference": len(reference)}


def psds1(frame_probs: dict[str, Any], hop_s: float, reference: Sequence[Event], labels: Sequence[str],
          durations: dict[str, float], *, alpha_st: float = 1.0) -> float:
    """PSDS scenario 1 (DTC 0.7, GTC 0.7, no cross-trigger term, alpha_st 1, max eFPR 100/h) of frame
    probabilities (``(T, C)`` per file, frame ``t`` covering ``[t * hop_s, (t + 1) * hop_s)``), computed by
    sed_scores_eval (the DCASE reference; extra ``psds``). Threshold-free, so no post-processing is involved.
    ``alpha_st = 0`` drops the penalty on the spread of per-class TPR (one class the model never finds then no
    longer pulls the score towards 0). Classes without a reference event are left out (PSDS is undefined for them); overlapping or touching reference
    events of one class in one file are merged first (sed_scores_eval refuses them, as DESED's evaluation does)."""
    try:
        from sed_scores_eval import intersection_based
        from sed_scores_eval.base_modules.scores import create_score_dataframe
    except ImportError:
        from edgekd.core.errors import ConfigError

        raise ConfigError('PSDS needs sed_scores_eval: pip install -c constraints.txt "edgekd[psds]"') from None
    import numpy as np

    present = [lab for lab in labels if any(r.label == lab for r in reference)]
    cols = [list(labels).index(lab) for lab in present]
    scores = {}
    for name, p in frame_probs.items():
        p = np.asarray(p, dtype=np.float64)[:, cols]
        scores[name] = create_score_dataframe(p, np.arange(p.shape[0] + 1) * hop_s, present)
    truth: dict[str, list[tuple[float, float, str]]] = {name: [] for name in frame_probs}
    for (fname, lab), evs in sorted(_group(r for r in reference if r.filename in truth).items()):
        merged: list[list[float]] = []
        for e in sorted(evs, key=lambda e: e.onset_s):
            if merged and e.onset_s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e.offset_s)
            else:
                merged.append([e.onset_s, e.offset_s])
        truth[fname] += [(on, off, lab) for on, off in merged]
    value, *_ = intersection_based.psds(scores=scores, ground_truth=truth, audio_durations={k: durations[k] for k in frame_probs},
                                        dtc_threshold=0.7, gtc_threshold=0.7, cttc_threshold=None, alpha_ct=0.0, alpha_st=alpha_st,
                                        unit_of_time="hour", max_efpr=100.0)
    return float(value)
