"""Streaming wake-word evaluation: false-reject rate (FRR) at false accepts per hour (FA/h), over a threshold sweep.

Counting rules (those of MLPerf Tiny's streaming wake-word benchmark):

- A score timeline becomes detections at a threshold: a detection fires at the first score >= threshold, and
  no other fires within the debounce (1 s) after it.
- A positive (an annotated phrase: file, onset, offset) is detected if a detection lands in
  ``[onset, offset + 1 s]`` (both ends included) of its own file.
- False accepts are counted on the negative audio only, streamed back to back as one continuous stream, so a
  detection that straddles two negative files counts once; FA/h = false accepts / negative hours.

The scorer is a function from audio (an array, or blocks of it read from disk) to ``(t_ms, score)`` arrays, so the
same counting serves a bundle (its smoothed posterior of one label, as the runtime thresholds it) and a teacher given
as ONNX models; a bundle scores an hour of negatives block by block in constant memory.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.data.annotations import Annotation, read_annotations
from edgekd.eval.matching import DEBOUNCE_MS, HIT_TAIL_MS, fire, in_hit_window, moving_average

__all__ = ["Annotation", "read_annotations", "detections", "count_hits", "count_false_accepts", "sweep", "pick_threshold", "recall_gate",
           "Scorer", "AudioIn", "as_array", "score_files", "bundle_scorer", "lowest_gate",
           "verifier_calls_per_hour", "det_plot", "annotated_positives", "evaluate_stream",
           "DEBOUNCE_MS", "HIT_TAIL_MS", "THRESHOLDS"]

AudioIn = np.ndarray | Iterable[np.ndarray]  # a whole signal, or its blocks in order
Scorer = Callable[[AudioIn], tuple[np.ndarray, np.ndarray]]


def as_array(audio: AudioIn) -> np.ndarray:
    """The whole signal (for scorers that need it at once, such as a teacher's ONNX pipeline)."""
    if isinstance(audio, np.ndarray):
        return audio
    blocks = list(audio)
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def detections(t_ms: np.ndarray, scores: np.ndarray, threshold: float, debounce_ms: int = DEBOUNCE_MS) -> np.ndarray:
    """Detection times (ms): the first score at or over ``threshold``, then nothing for ``debounce_ms``."""
    return np.asarray(t_ms, dtype=np.float64)[fire(t_ms, scores, threshold, debounce_ms)]


def count_hits(dets_by_file: dict[str, np.ndarray], annotations: Sequence[Annotation], tail_ms: int = HIT_TAIL_MS) -> int:
    """Positives with a detection in their hit window (``edgekd.eval.matching``) of their own file."""
    return sum(bool(np.any(in_hit_window(dets_by_file.get(a.filename, np.zeros(0)), a.onset_s * 1000.0, a.offset_s * 1000.0, tail_ms)))
               for a in annotations)


def count_false_accepts(t_ms: np.ndarray, scores: np.ndarray, threshold: float, debounce_ms: int = DEBOUNCE_MS) -> int:
    """False accepts on the (concatenated) negative stream."""
    return int(detections(t_ms, scores, threshold, debounce_ms).shape[0])


def sweep(pos: dict[str, tuple[np.ndarray, np.ndarray]], annotations: Sequence[Annotation], neg: tuple[np.ndarray, np.ndarray],
          neg_seconds: float, thresholds: Sequence[float]) -> list[dict[str, float]]:
    """FRR and FA/h at each threshold."""
    rows = []
    hours = neg_seconds / 3600.0
    for thr in thresholds:
        dets = {f: detections(t, s, thr) for f, (t, s) in pos.items()}
        hits = count_hits(dets, annotations)
        fa = count_false_accepts(neg[0], neg[1], thr)
        rows.append({"threshold": float(thr), "frr": 1.0 - hits / max(1, len(annotations)), "false_accepts": fa,
                     "fa_per_hour": fa / hours if hours > 0 else math.inf, "hits": hits, "positives": len(annotations)})
    return rows


FA_POINTS = (0.5, 1.0, 2.0, 5.0)  # false accepts per hour at which reports give the FRR
THRESHOLDS = tuple(round(x, 3) for x in np.arange(0.01, 1.0, 0.01))  # the sweep's grid: 0.01 ... 0.99


def frr_at(rows: list[dict[str, float]], fa_per_hour: float) -> float | None:
    """The lowest FRR of a sweep at or under ``fa_per_hour`` (None: no threshold gets there)."""
    ok = [r["frr"] for r in rows if r["fa_per_hour"] <= fa_per_hour]
    return min(ok) if ok else None


def frr_points(rows: list[dict[str, float]]) -> dict[str, float | None]:
    """``frr_at_<FA>_fa_per_hour`` for every ``FA_POINTS`` entry."""
    return {f"frr_at_{fa:g}_fa_per_hour": frr_at(rows, fa) for fa in FA_POINTS}


def pick_threshold(rows: list[dict[str, float]], target_fa_per_hour: float) -> dict[str, float] | None:
    """The lowest-FRR row with FA/h at or under the target (the lowest such threshold on ties)."""
    ok = [r for r in rows if r["fa_per_hour"] <= target_fa_per_hour]
    return min(ok, key=lambda r: (r["frr"], r["threshold"])) if ok else None


def verifier_calls_per_hour(scores: np.ndarray, seconds: float, gate: float, every: int, max_calls: int | None = None,
                            hold: int = 0) -> float:
    """How often a two-stage bundle would ask its verifier on a stream whose gate-side (smoothed) scores are ``scores``:
    the inferences ``verified_hops`` picks where the gate is open (``held_open``: the score reaches ``gate``, and
    ``hold`` inferences after), per hour of ``seconds`` of audio."""
    from edgekd.runtime.kws_post import held_open, verified_hops

    return float(np.sum(verified_hops(held_open(np.asarray(scores) >= gate, hold), every, max_calls))) / (seconds / 3600.0)


def lowest_gate(scores: np.ndarray, seconds: float, budget: float, every: int, max_calls: int | None = None,
                hold: int = 0) -> float | None:
    """The lowest gate of ``THRESHOLDS`` whose verifier calls (``verifier_calls_per_hour``) stay within ``budget`` per
    hour, and those of every gate above it; None when the highest does not. (Calls need not fall as the gate rises: a
    low gate with a cap per opening or a hold merges openings into few long ones, and asks less.)"""
    chosen = None
    for g in reversed(THRESHOLDS):
        if verifier_calls_per_hour(scores, seconds, g, every, max_calls, hold) > budget:
            break
        chosen = g
    return chosen


def recall_gate(peaks: np.ndarray, recall: float) -> float:
    """The highest gate of ``THRESHOLDS`` that at least ``recall`` of the positives reach (``peaks``: each positive's
    highest gate-side score); the lowest of ``THRESHOLDS`` when none does, the highest when ``recall`` is 0 or there
    are no positives."""
    p = np.asarray(peaks, dtype=np.float64)
    if not p.size:
        return THRESHOLDS[-1]
    chosen = THRESHOLDS[0]
    for g in THRESHOLDS:
        if float(np.mean(p >= g)) < recall:
            break
        chosen = g
    return chosen


def bundle_scorer(detector: Any, label: str, chunk: int = 1280, calls: list[int] | None = None) -> Scorer:
    """A bundle's score timeline for ``label``: its posterior, smoothed exactly as the runtime's post-processing
    smooths it (same stride and window), at each inference's audio time. A bundle with a verifier (two stages) scores
    what its runtime thresholds: the verifier's posterior where the smoothed posterior reaches the label's gate, else 0.
    ``calls``: each scoring appends how often the runtime asked the verifier over that audio, at the bundle's own
    thresholds (``KwsStream.verifier_calls``; 0 without a verifier): its CPU on that audio."""
    from edgekd.runtime.kws_post import softmax

    if label not in detector.labels:
        raise ConfigError(f"--label {label!r} is not one of the bundle's labels: {', '.join(detector.labels)}")
    k = detector.labels.index(label)
    pp = detector.postprocess
    n_smooth = max(1, round(pp.smooth_ms / pp.stride_ms) if pp.smooth_ms else 1)
    if getattr(detector, "verifier", None) is not None:
        return _pair_scorer(detector, label, k, n_smooth, chunk, calls)

    def score(audio: AudioIn) -> tuple[np.ndarray, np.ndarray]:
        s = detector.create_stream()
        times: list[int] = []
        logits: list[np.ndarray] = []
        posts: list[np.ndarray] = []

        def keep(t_ms: int, out: np.ndarray) -> None:
            times.append(t_ms)
            logits.append(out.copy())

        s.on_inference = keep
        blocks = (audio[i : i + chunk] for i in range(0, audio.shape[0], chunk)) if isinstance(audio, np.ndarray) else audio
        for x in blocks:
            s.accept_waveform(x)
            if logits:  # keep only this label's posterior: an hour of negatives stays a few MB
                posts.append(softmax(np.asarray(logits, dtype=np.float64))[:, k])
                logits.clear()
        if calls is not None:
            calls.append(0)
        if not posts:
            return np.zeros(0), np.zeros(0)
        return np.asarray(times, dtype=np.float64), moving_average(np.concatenate(posts), n_smooth)

    return score


def _pair_scorer(detector: Any, label: str, k: int, n_smooth: int, chunk: int, calls: list[int] | None) -> Scorer:
    """``bundle_scorer`` of a two-stage bundle: the gates (held open ``hold`` inferences) and the verified inferences
    decided per inference exactly as ``KwsPostprocessor`` decides them (any keyword's gate open counts towards the run
    of open inferences)."""
    from edgekd.runtime.kws_post import HOLD_NEVER, asks_verifier, softmax

    vb = detector.verifier_block
    kws = detector.manifest.keyword_labels
    kw_idx = np.array([detector.labels.index(x) for x in kws])
    gates = np.array([vb.gates.get(x, math.inf) for x in kws])
    mine = kws.index(label)
    v = detector.verifier.labels.index(label)

    def score(audio: AudioIn) -> tuple[np.ndarray, np.ndarray]:
        s = detector.create_stream()
        times: list[int] = []
        scores: list[float] = []
        last = np.zeros((n_smooth, kw_idx.shape[0]))
        run = [0]
        since = np.full(kw_idx.shape[0], HOLD_NEVER)  # inferences since each keyword's score was at or over its gate
        peak = np.zeros(kw_idx.shape[0])  # each keyword's highest smoothed score since its gate opened

        def keep(t_ms: int, out: np.ndarray) -> None:
            last[len(times) % n_smooth] = softmax(np.asarray(out, dtype=np.float64))[kw_idx]
            times.append(t_ms)
            smoothed = np.sum(last[: min(len(times), n_smooth)], axis=0) / min(len(times), n_smooth)
            since[:] = np.where(smoothed >= gates, 0, since + 1)
            is_open = since <= vb.hold
            peak[:] = np.where(is_open, np.maximum(peak, smoothed), 0.0)
            run[0] = run[0] + 1 if is_open.any() else 0
            asked = run[0] > 0 and asks_verifier(run[0] - 1, vb.every, vb.max_calls)
            first = run[0] == 1  # the opening's first call also hears an earlier second (lookback_ms)
            scores.append(float(s.verify_now(first)[v]) * float(peak[mine]) ** vb.peak_power if asked and is_open[mine] else 0.0)

        s.on_inference = keep  # the post-processor's own verifier call at a hop reuses this one's answer (verify_now)
        blocks = (audio[i : i + chunk] for i in range(0, audio.shape[0], chunk)) if isinstance(audio, np.ndarray) else audio
        for x in blocks:
            s.accept_waveform(x)
        if calls is not None:
            calls.append(s.verifier_calls)
        return np.asarray(times, dtype=np.float64), np.asarray(scores, dtype=np.float64)

    return score


def score_files(scorer: Scorer, files: Sequence[Path], load: Callable[[Path], AudioIn], sample_rate: int = 16000,
                concatenate: bool = False, progress: Callable[[int, int], None] | None = None
                ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """Score each file (each from a fresh stream), or, with ``concatenate``, the files back to back as one stream
    (returned under the key ``""``). ``load`` gives a file's audio whole or as blocks (read lazily, one file open at
    a time). Also returns the total audio seconds."""
    samples = [0]

    def counted(x: AudioIn) -> Iterator[np.ndarray]:
        for b in (x,) if isinstance(x, np.ndarray) else x:
            samples[0] += b.shape[0]
            yield b

    def opened(i: int, f: Path) -> AudioIn:
        if progress and i:
            progress(i, len(files))
        return load(f)

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if concatenate:
        out[""] = scorer(b for i, f in enumerate(files) for b in counted(opened(i, f)))
    else:
        for i, f in enumerate(files):
            out[f.name] = scorer(counted(opened(i, f)))
    if progress:
        progress(len(files), len(files))
    return out, samples[0] / sample_rate


def annotated_positives(folder: Path, annotations: Path, label: str) -> tuple[list[Annotation], list[Path]]:
    """The positive WAVs of ``folder`` and their rows of ``annotations`` for ``label``; each file must have a row and
    each row a file (``DataError`` naming the first that does not)."""
    from edgekd.core.errors import DataError

    rows = read_annotations(annotations, labels=[label])
    wavs = sorted(folder.glob("*.wav"))
    if not wavs:
        raise DataError(f"--positives {folder}: no .wav files")
    annotated = {a.filename for a in rows}
    for w in wavs:
        if w.name not in annotated:
            raise DataError(f"{w}: positive file has no row in {annotations}; annotate it (filename onset offset {label}) or remove it")
    missing = sorted(annotated - {w.name for w in wavs})
    if missing:
        raise DataError(f"{annotations}: names {missing[0]} (and {len(missing) - 1} more), not found in {folder}")
    return rows, wavs


def evaluate_stream(scorer: Scorer, rows: Sequence[Annotation], wavs: Sequence[Path], negatives: Sequence[Path],
                    load: Callable[[Path], AudioIn], target_fa_per_hour: float, *, thresholds: Sequence[float] | None = None,
                    progress: Callable[[str, int], Any] | None = None) -> dict[str, Any]:
    """FRR and FA/h over a threshold sweep (default 0.01 ... 0.99): each positive file from a fresh stream, the
    negatives back to back as one stream; the threshold with the lowest FRR at or under ``target_fa_per_hour``.
    ``progress(what, files)`` opens a progress display (``edgekd.core.progress.Progress``) for each of the two passes."""
    with progress("positives", len(wavs)) if progress else contextlib.nullcontext() as bar:
        pos, pos_s = score_files(scorer, list(wavs), load, progress=bar.callback() if bar else None)
    with progress("negatives", len(negatives)) if progress else contextlib.nullcontext() as bar:
        neg, neg_s = score_files(scorer, list(negatives), load, concatenate=True, progress=bar.callback() if bar else None)
    grid = list(thresholds) if thresholds is not None else list(THRESHOLDS)
    rows_sweep = sweep(pos, rows, neg[""], neg_s, grid)
    return {"positives": len(rows), "positive_seconds": pos_s, "negative_seconds": neg_s, "negative_files": [str(n) for n in negatives],
            "target_fa_per_hour": target_fa_per_hour, "chosen": pick_threshold(rows_sweep, target_fa_per_hour), "sweep": rows_sweep,
            "rules": {"tail_ms": HIT_TAIL_MS, "debounce_ms": DEBOUNCE_MS, "negatives": "streamed back to back"}}


def det_plot(curves: dict[str, list[dict[str, Any]]], path: Path, target_fa_per_hour: float) -> None:
    """DET curve (FRR vs FA/h, log x) of one or more systems to a PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--det needs matplotlib: pip install matplotlib") from None
    from edgekd.core.fsutil import atomic_write

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, rows in curves.items():
        pts = sorted((max(r["fa_per_hour"], 1e-2), 100.0 * r["frr"]) for r in rows if math.isfinite(r["fa_per_hour"]))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=name)
    ax.axvline(target_fa_per_hour, color="grey", linestyle=":", label=f"{target_fa_per_hour} FA/h")
    ax.set_xscale("log")
    ax.set_xlabel("false accepts per hour (0 drawn at 0.01)")
    ax.set_ylabel("false-reject rate (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
