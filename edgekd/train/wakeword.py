"""Wake-word distillation targets from a teacher that scores raw audio (``OnnxTeacher``).

The student is an ordinary KWS student whose labels are (phrase, ``_unknown_``, ``_silence_``). A teacher
score ``p`` (probability of the phrase) becomes pseudo-logits ``[log(2p / (1 - p)), 0, 0]``, whose softmax
gives the phrase ``p`` and splits ``1 - p`` over the other two, so Hinton's loss at temperature 1 is the
soft-target cross-entropy against the teacher's score (for the phrase, the BCE the teacher was trained with).

- Labelled clips: each clip is scored inside 1.5 s of quiet before and 0.4 s after; its target is the
  teacher's highest score from 0.2 s into the clip to 0.4 s after it (the teacher fires once the phrase
  ends). All augmented views of a clip share its target.
- Unlabelled transfer audio (running speech): 1 s windows every 250 ms, label -1 (only the KD term), target
  the teacher's score at the hop that ends at or just after the window's end.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgekd.core.units import SAMPLE_RATE
from edgekd.data.speech_commands import Clip
from edgekd.runtime.frontend import LogMelFrontend
from edgekd.train.features import FeatureSet
from edgekd.train.teachers.oww import CHUNK, OnnxTeacher

__all__ = ["prob_logits", "clip_targets", "transfer_windows", "with_transfer"]

PRE_S, POST_S, SKIP_S = 1.5, 0.4, 0.2
HOP_MS = 1000 * CHUNK // SAMPLE_RATE


def prob_logits(p: np.ndarray, keyword_index: int, n_labels: int) -> np.ndarray:
    """Pseudo-logits whose softmax puts ``p`` on the keyword and ``(1 - p) / (n - 1)`` on each other label."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    out = np.zeros((p.shape[0], n_labels), dtype=np.float32)
    out[:, keyword_index] = np.log(p * (n_labels - 1) / (1 - p))
    return out


_T: dict[str, OnnxTeacher] = {}


def _score_clip(args: tuple[str, Clip, int]) -> float:
    spec, clip, seed = args
    if spec not in _T:
        _T[spec] = OnnxTeacher(spec)
    rng = np.random.default_rng(seed)
    x = clip.load(SAMPLE_RATE)
    quiet = lambda n: (rng.standard_normal(n) * 3e-4).astype(np.float32)  # noqa: E731
    audio = np.concatenate([quiet(int(PRE_S * SAMPLE_RATE)), x, quiet(int(POST_S * SAMPLE_RATE))])
    s = _T[spec].scores(audio)
    t_ms = (np.arange(s.shape[0]) + 1) * HOP_MS
    lo, hi = 1000 * (PRE_S + SKIP_S), 1000 * (PRE_S + x.shape[0] / SAMPLE_RATE + POST_S)
    m = (t_ms >= lo) & (t_ms <= hi)
    return float(s[m].max()) if m.any() else 0.0


def clip_targets(spec: str, clips: list[Clip], *, workers: int = 2, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The teacher's score for every clip (see the module docstring), in parallel processes."""
    jobs = [(spec, c, i) for i, c in enumerate(clips)]
    out = np.zeros(len(jobs), dtype=np.float32)
    if workers > 1:
        from edgekd.core.procutil import spawn_imap

        for i, p in enumerate(spawn_imap(_score_clip, jobs, workers, chunksize=16)):
            out[i] = p
            if progress:
                progress(i + 1, len(jobs))
    else:
        for i, job in enumerate(jobs):
            out[i] = _score_clip(job)
            if progress:
                progress(i + 1, len(jobs))
    return out


def transfer_windows(teacher: OnnxTeacher, audio: np.ndarray, frontend: LogMelFrontend, window_frames: int = 98,
                     stride_frames: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Features of 1 s windows of ``audio`` every ``stride_frames`` and the teacher's score for each."""
    feats = frontend.features(audio)
    scores = teacher.scores(audio)
    p = frontend.params
    starts = np.arange(0, feats.shape[0] - window_frames + 1, stride_frames)
    x = np.stack([feats[s : s + window_frames] for s in starts]).astype(np.float16)
    end_ms = ((starts + window_frames - 1) * p.hop_samples + p.window_samples) * 1000.0 / p.sample_rate
    hop = np.minimum(np.ceil(end_ms / HOP_MS).astype(int) - 1, scores.shape[0] - 1)
    return x, scores[np.maximum(hop, 0)]


def with_transfer(fs: FeatureSet, x: np.ndarray) -> FeatureSet:
    """``fs`` plus unlabelled rows (label -1), each its own clip."""
    base = int(fs.clip.max()) + 1 if len(fs) else 0
    return FeatureSet(np.concatenate([fs.x, x.astype(fs.x.dtype)]), np.concatenate([fs.y, np.full(x.shape[0], -1, dtype=fs.y.dtype)]),
                      np.concatenate([fs.clip, base + np.arange(x.shape[0], dtype=fs.clip.dtype)]), fs.labels, f"{fs.key}+transfer{x.shape[0]}",
                      fs.files)
