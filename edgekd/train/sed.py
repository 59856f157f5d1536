"""Sound-event detection training: frame targets from a DCASE tsv, frame-level distillation, event metrics.

Frame ``t`` of the log-mel features (10 ms hop) is active for a class when its centre lies in an annotated
event of that class. Training takes random crops of ``crop_frames`` frames from the soundscapes. The loss is
``(1 - alpha) * BCE(student, labels) + alpha * T^2 * BCE(sigmoid(student / T), sigmoid(teacher / T))``, the
frame-level, multi-label form of Hinton's loss (``alpha = 0``: no teacher). Teacher logits are computed once
on whole soundscapes and cropped with the student's input.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekd.data.annotations import Annotation, read_annotations
from edgekd.errors import DataError
from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
from edgekd.runtime.sed_post import SedPostprocessConfig, sed_events, sigmoid
from edgekd.runtime.wav import load_audio
from edgekd.sed_metrics import score_events
from edgekd.train.students import build_model
from edgekd.train.students.sed import TIME_POOL

__all__ = ["SedSplit", "load_sed_split", "sed_kd_loss", "pool_targets", "train_sed", "predict_frames", "evaluate_sed"]


@dataclass
class SedSplit:
    files: list[str]
    feats: list[np.ndarray]  # (T, M) float32 per soundscape
    targets: list[np.ndarray]  # (T, C) float32 per soundscape
    rows: list[Annotation]
    durations: dict[str, float]


def load_sed_split(root: Path, split: str, labels: list[str], params: FrontendParams = FrontendParams()) -> SedSplit:
    """Features and frame targets of ``root/audio/<split>/*.wav`` annotated by ``root/<split>.tsv``."""
    rows = read_annotations(root / f"{split}.tsv", labels=labels)
    wavs = sorted((root / "audio" / split).glob("*.wav"))
    if not wavs:
        raise DataError(f"{root / 'audio' / split}: no .wav soundscapes; make them with `edgekd data synth-sed`")
    fe = LogMelFrontend(params)
    by_file: dict[str, list[Annotation]] = {}
    for r in rows:
        by_file.setdefault(r.filename, []).append(r)
    out = SedSplit([], [], [], rows, {})
    for w in wavs:
        x = load_audio(w, params.sample_rate)
        f = fe.features(x)
        centre = (np.arange(f.shape[0]) * params.hop_samples + params.window_samples / 2) / params.sample_rate
        y = np.zeros((f.shape[0], len(labels)), dtype=np.float32)
        for r in by_file.get(w.name, []):
            y[(centre >= r.onset_s) & (centre < r.offset_s), labels.index(r.label)] = 1.0
        out.files.append(w.name)
        out.feats.append(f)
        out.targets.append(y)
        out.durations[w.name] = x.shape[0] / params.sample_rate
    return out


def pool_targets(y: np.ndarray) -> np.ndarray:
    """Frame targets at the models' output rate: a class is active in an output frame if it is in any of its inputs."""
    n = y.shape[0] // TIME_POOL
    return y[: n * TIME_POOL].reshape(n, TIME_POOL, -1).max(axis=1)


def sed_kd_loss(student: torch.Tensor, teacher: torch.Tensor | None, target: torch.Tensor, alpha: float, temperature: float) -> torch.Tensor:
    hard = F.binary_cross_entropy_with_logits(student, target)
    if teacher is None or alpha == 0.0:
        return hard
    t = float(temperature)
    soft = F.binary_cross_entropy_with_logits(student / t, torch.sigmoid(teacher.detach() / t)) * t * t
    return alpha * soft + (1.0 - alpha) * hard


@torch.no_grad()
def predict_frames(model: nn.Module, feats: list[np.ndarray]) -> list[np.ndarray]:
    """Frame logits of whole soundscapes, one at a time."""
    model.eval()
    return [model(torch.from_numpy(f.astype(np.float32))[None])[0].numpy() for f in feats]


def evaluate_sed(logits: list[np.ndarray], split: SedSplit, labels: list[str], hop_ms: float, cfg: SedPostprocessConfig) -> dict[str, Any]:
    """Post-process frame probabilities into events and score them: event-based and segment-based metrics."""
    events = {name: sed_events(sigmoid(z), tuple(labels), hop_ms, cfg) for name, z in zip(split.files, logits, strict=True)}
    return score_events(split.rows, events, labels, split.durations)


def train_sed(
    arch: str,
    train: SedSplit,
    val: SedSplit,
    labels: list[str],
    *,
    teacher_logits: list[np.ndarray] | None = None,
    epochs: int = 30,
    lr: float = 3e-3,
    batch: int = 16,
    crop_frames: int = 400,
    alpha: float = 0.7,
    temperature: float = 2.0,
    seed: int = 0,
    threads: int = 2,
    hop_ms: float = 10.0 * TIME_POOL,
    postprocess: SedPostprocessConfig = SedPostprocessConfig(),
    progress: Callable[[str], None] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``arch`` on random crops; keep the epoch with the best validation event-based F1."""
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, threads))
    rng = np.random.default_rng(seed)
    allf = np.concatenate(train.feats)
    model = build_model(arch, n_labels=len(labels), n_mels=allf.shape[1])
    model.norm.set_stats(torch.from_numpy(allf.mean(0)), torch.from_numpy(allf.std(0)))  # type: ignore[operator]
    steps = max(1, len(train.feats) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps * epochs, pct_start=0.15)
    use_t = teacher_logits is not None and alpha > 0
    targets = [pool_targets(y) for y in train.targets]
    crop_frames -= crop_frames % TIME_POOL
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    history: dict[str, Any] = {"epochs": []}
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train.feats))
        total = 0.0
        for s in range(steps):
            idx = order[s * batch : (s + 1) * batch]
            xs, ys, ts = [], [], []
            for i in idx:
                n = train.feats[i].shape[0] // TIME_POOL
                a = int(rng.integers(0, max(1, n - crop_frames // TIME_POOL + 1)))  # in output frames
                b = a + crop_frames // TIME_POOL
                xs.append(train.feats[i][a * TIME_POOL : b * TIME_POOL])
                ys.append(targets[i][a:b])
                if use_t:
                    ts.append(teacher_logits[i][a:b])  # type: ignore[index]
            x = torch.from_numpy(np.stack(xs).astype(np.float32))
            y = torch.from_numpy(np.stack(ys))
            z = model(x)
            loss = sed_kd_loss(z, torch.from_numpy(np.stack(ts)) if use_t else None, y, alpha if use_t else 0.0, temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.item())
        m = evaluate_sed(predict_frames(model, val.feats), val, labels, hop_ms, postprocess)
        f1 = m["event_based"]["overall"]["f1"]
        history["epochs"].append({"epoch": epoch + 1, "loss": total / steps, "val_event_f1": f1, "val_segment_f1": m["segment_based"]["overall"]["f1"]})
        if progress:
            progress(f"{arch} epoch {epoch + 1}/{epochs}: loss {total / steps:.4f}, val event-F1 {f1:.3f}, segment-F1 "
                     f"{m['segment_based']['overall']['f1']:.3f}")
        if best is None or f1 > best[0]:
            best = (f1, copy.deepcopy(model.state_dict()))
    assert best is not None
    model.load_state_dict(best[1])
    history["best_val_event_f1"] = best[0]
    history["train_seconds"] = time.time() - t0
    return model.eval(), history
