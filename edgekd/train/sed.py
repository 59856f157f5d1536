"""Sound-event detection training: frame targets from a DCASE tsv, frame-level distillation, event metrics.

Frame ``t`` of the log-mel features (10 ms hop) is active for a class when its centre lies in an annotated
event of that class. Training takes random crops of ``crop_frames`` frames from the soundscapes. The loss is
``(1 - alpha) * BCE(student, labels) + alpha * T^2 * BCE(sigmoid(student / T), sigmoid(teacher / T))``, the
frame-level, multi-label form of Hinton's loss (``alpha = 0``: no teacher). Teacher logits are computed once
on whole soundscapes and cropped with the student's input. ``SedObjective`` is what the one training loop
(``train.loop.fit``) needs of the task; the loss itself is ``train.distill.sed_kd_loss``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgekd.core.errors import ConfigError, DataError
from edgekd.data.annotations import Annotation, read_annotations
from edgekd.eval.sed_metrics import score_events
from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
from edgekd.runtime.sed_post import SedPostprocessConfig, sed_events, sigmoid
from edgekd.runtime.wav import load_audio
from edgekd.train.dist import DistContext, shard_rows
from edgekd.train.distill import sed_kd_loss
from edgekd.train.loop import Resume, Schedule, fit
from edgekd.train.models import build_model
from edgekd.train.models.sed_frames import TIME_POOL

__all__ = ["SedSplit", "SedObjective", "load_sed_split", "pool_targets", "train_sed", "qat_sed", "load_transfer", "predict_frames", "evaluate_sed",
           "tune_postprocess"]


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


def load_transfer(root: Path, params: FrontendParams = FrontendParams()) -> list[np.ndarray]:
    """Features of the unlabelled soundscapes ``root/audio/transfer/*.wav`` (``edgekd data synth-sed --transfer N``)."""
    wavs = sorted((root / "audio" / "transfer").glob("*.wav"))
    if not wavs:
        raise DataError(f"{root / 'audio' / 'transfer'}: no .wav soundscapes; make them with `edgekd data synth-sed --transfer N`")
    fe = LogMelFrontend(params)
    return [fe.features(load_audio(w, params.sample_rate)) for w in wavs]


def pool_targets(y: np.ndarray) -> np.ndarray:
    """Frame targets at the models' output rate: a class is active in an output frame if it is in any of its inputs."""
    n = y.shape[0] // TIME_POOL
    return y[: n * TIME_POOL].reshape(n, TIME_POOL, -1).max(axis=1)


@torch.no_grad()
def predict_frames(model: nn.Module, feats: list[np.ndarray]) -> list[np.ndarray]:
    """Frame logits of whole soundscapes, one at a time."""
    model.eval()
    device = next(model.parameters()).device
    return [model(torch.from_numpy(f.astype(np.float32))[None].to(device))[0].cpu().numpy() for f in feats]


def evaluate_sed(logits: list[np.ndarray], split: SedSplit, labels: list[str], hop_ms: float, cfg: SedPostprocessConfig) -> dict[str, Any]:
    """Post-process frame probabilities into events and score them: event-based and segment-based metrics."""
    return _score_probs([sigmoid(z) for z in logits], split, labels, hop_ms, cfg)


def _score_probs(probs: list[np.ndarray], split: SedSplit, labels: list[str], hop_ms: float, cfg: SedPostprocessConfig) -> dict[str, Any]:
    events = {name: sed_events(p, tuple(labels), hop_ms, cfg) for name, p in zip(split.files, probs, strict=True)}
    return score_events(split.rows, events, labels, split.durations)


def tune_postprocess(
    logits: list[np.ndarray],
    split: SedSplit,
    labels: list[str],
    hop_ms: float,
    *,
    median_frames: tuple[int, ...] = (1, 3, 5, 7, 9),
    onset: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7),
    offset_ratio: tuple[float, ...] = (0.5, 0.75),
    min_duration_ms: tuple[int, ...] = (40, 80, 160),
    merge_gap_ms: tuple[int, ...] = (0, 120, 240),
    latency_ms: tuple[int, ...] = (0, 40, 80, 120),
) -> tuple[SedPostprocessConfig, float]:
    """The post-processing (median, thresholds, minimum duration, merge gap, latency) with the best event-based F1
    on ``split`` (a validation split, never the test split); returns it and its F1. A grid search at latency 0, then
    the latencies with that setting, then the grid again at the best latency when it is not 0."""
    import dataclasses
    import itertools

    probs = [sigmoid(z) for z in logits]  # once, not once per setting tried

    def f1(cfg: SedPostprocessConfig) -> float:
        return float(_score_probs(probs, split, labels, hop_ms, cfg)["event_based"]["overall"]["f1"])

    def grid(latency: int) -> tuple[float, SedPostprocessConfig]:
        best: tuple[float, SedPostprocessConfig] | None = None
        for med, on, ratio, mind, gap in itertools.product(median_frames, onset, offset_ratio, min_duration_ms, merge_gap_ms):
            cfg = SedPostprocessConfig(onset_threshold=on, offset_threshold=round(on * ratio, 4), median_frames=med, min_duration_ms=mind,
                                       merge_gap_ms=gap, latency_ms=latency)
            score = f1(cfg)
            if best is None or score > best[0]:
                best = (score, cfg)
        assert best is not None, "an empty grid"
        return best

    best = grid(0)
    for lat in latency_ms:
        if lat:
            cfg = dataclasses.replace(best[1], latency_ms=lat)
            score = f1(cfg)
            if score > best[0]:
                best = (score, cfg)
    if best[1].latency_ms:
        again = grid(best[1].latency_ms)
        best = again if again[0] > best[0] else best
    return best[1], best[0]


def _new_model(arch: str, train: SedSplit, labels: list[str]) -> nn.Module:
    """A fresh ``arch`` whose input normalisation holds the training features' per-mel mean and std."""
    allf = np.concatenate(train.feats)
    model = build_model(arch, n_labels=len(labels), n_mels=allf.shape[1])
    model.norm.set_stats(torch.from_numpy(allf.mean(0)), torch.from_numpy(allf.std(0)))  # type: ignore[operator]
    return model


def _crop_batch(idx: np.ndarray, feats: list[np.ndarray], targets: list[np.ndarray], teacher: list[np.ndarray] | None,
                crop_frames: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One random crop of ``crop_frames`` input frames (a whole number of output frames) per soundscape of ``idx``:
    features, pooled targets and, with a teacher, its logits over the same output frames."""
    xs, ys, ts = [], [], []
    for i in idx:
        n = feats[i].shape[0] // TIME_POOL
        a = int(rng.integers(0, max(1, n - crop_frames // TIME_POOL + 1)))  # in output frames
        b = a + crop_frames // TIME_POOL
        xs.append(feats[i][a * TIME_POOL : b * TIME_POOL])
        ys.append(targets[i][a:b])
        if teacher is not None:
            ts.append(teacher[i][a:b])
    return (torch.from_numpy(np.stack(xs).astype(np.float32)), torch.from_numpy(np.stack(ys)),
            torch.from_numpy(np.stack(ts)) if teacher is not None else None)


class SedObjective:
    """Random crops of whole soundscapes (labelled ones, then transfer ones), the frame-level KD loss (transfer crops:
    the soft term alone), validation by event-based F1 after the post-processing ``postprocess``."""

    def __init__(self, arch: str, train: SedSplit, val: SedSplit, labels: list[str], *, teacher_logits: list[np.ndarray] | None,
                 crop_frames: int, alpha: float, temperature: float, hop_ms: float, postprocess: SedPostprocessConfig,
                 transfer: tuple[list[np.ndarray], list[np.ndarray]] | None) -> None:
        if transfer is not None and teacher_logits is None:
            raise ConfigError("a transfer set needs a teacher")
        self.arch, self.train, self.val, self.labels = arch, train, val, labels
        self.title = f"train {arch}"
        self.feats = list(train.feats) + (list(transfer[0]) if transfer else [])
        self.n_labelled = len(train.feats)
        self.teacher = list(teacher_logits) + list(transfer[1]) if transfer and teacher_logits is not None else teacher_logits
        self.use_teacher = teacher_logits is not None and alpha > 0
        self.targets = [pool_targets(y) for y in train.targets] + [
            np.zeros((f.shape[0] // TIME_POOL, len(labels)), np.float32) for f in self.feats[self.n_labelled :]]
        self.rows = len(self.feats)
        self.crop_frames = crop_frames - crop_frames % TIME_POOL
        self.alpha, self.temperature, self.hop_ms, self.postprocess = alpha, temperature, hop_ms, postprocess
        self.has_transfer = transfer is not None

    def setup(self, model: nn.Module | None, rng: np.random.Generator, d: DistContext) -> nn.Module:
        return (model if model is not None else _new_model(self.arch, self.train, self.labels)).to(d.device)

    def extra_parameters(self) -> list[nn.Parameter]:
        return []

    def loss(self, net: nn.Module, rows: np.ndarray, rng: np.random.Generator, d: DistContext) -> torch.Tensor:
        """Crops for the whole global batch (so every rank draws the same), then this rank's share."""
        x, y, tl = _crop_batch(rows, self.feats, self.targets, self.teacher if self.use_teacher else None, self.crop_frames, rng)
        mine = torch.from_numpy(shard_rows(np.arange(rows.shape[0]), d.rank, d.world_size))
        labelled = torch.from_numpy(rows < self.n_labelled)[mine] if self.has_transfer else None
        z = net(x[mine].to(d.device))
        return sed_kd_loss(z, tl[mine].to(d.device) if tl is not None else None, y[mine].to(d.device),
                           self.alpha if self.use_teacher else 0.0, self.temperature, labelled.to(d.device) if labelled is not None else None)

    def after_backward(self, d: DistContext) -> None:
        return None

    def validate(self, model: nn.Module, d: DistContext) -> dict[str, float]:
        m = evaluate_sed(predict_frames(model, self.val.feats), self.val, self.labels, self.hop_ms, self.postprocess)
        return {"val_event_f1": float(m["event_based"]["overall"]["f1"]), "val_segment_f1": float(m["segment_based"]["overall"]["f1"])}

    def fingerprint(self) -> dict[str, Any]:
        return {"arch": self.arch, "files": self.train.files, "transfer": self.rows - self.n_labelled, "alpha": self.alpha,
                "crop_frames": self.crop_frames}

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, saved: dict[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None


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
    model: nn.Module | None = None,
    before_epoch: Callable[[nn.Module, int], None] | None = None,
    transfer: tuple[list[np.ndarray], list[np.ndarray]] | None = None,
    dist: DistContext | None = None,
    state: Resume | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``arch`` on random crops through the one loop (``train.loop.fit``: DDP under torchrun, resumable
    ``state``); keep the epoch with the best validation event-based F1.

    ``model``: go on from this model (QAT fine-tuning) instead of a fresh ``arch``; ``before_epoch(model, epoch)``
    runs before each step; ``transfer``: (features, teacher logits) of unlabelled soundscapes, mixed into the
    batches with the soft term alone (needs ``teacher_logits``); ``progress(line)`` gets one line per epoch."""
    obj = SedObjective(arch, train, val, labels, teacher_logits=teacher_logits, crop_frames=crop_frames, alpha=alpha,
                       temperature=temperature, hop_ms=hop_ms, postprocess=postprocess, transfer=transfer)

    def on_epoch(epoch: int, loss: float, m: dict[str, float]) -> None:
        if progress:
            progress(f"{arch} epoch {epoch}/{epochs}: loss {loss:.4f}, val event-F1 {m['val_event_f1']:.3f}, segment-F1 "
                     f"{m['val_segment_f1']:.3f}")

    return fit(obj, Schedule(epochs, batch, lr, 1e-2, seed, threads), model=model, progress=False, before_epoch=before_epoch,
               on_epoch=on_epoch, dist=dist, state=state)


def qat_sed(
    model: nn.Module,
    train: SedSplit,
    val: SedSplit,
    labels: list[str],
    *,
    teacher_logits: list[np.ndarray] | None = None,
    epochs: int = 10,
    lr: float = 5e-4,
    alpha: float = 0.5,
    temperature: float = 1.0,
    seed: int = 0,
    threads: int = 2,
    postprocess: SedPostprocessConfig = SedPostprocessConfig(),
    progress: Callable[[str], None] | None = None,
    transfer: tuple[list[np.ndarray], list[np.ndarray]] | None = None,
    dist: DistContext | None = None,
    state: Resume | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Fine-tune a trained float SED student with fake int8 quantization (BN folded, observers calibrated on
    training crops, frozen for the last epoch), with the same frame-level distillation loss. Returns the QAT model
    (export it with ``export_sed``: it becomes int8 ONNX)."""
    from edgekd.train.qat import calibrate, freeze_observers_from, to_qat

    q = to_qat(copy.deepcopy(model))
    rng = np.random.default_rng(seed)
    crops = [f[: 400 - 400 % TIME_POOL] for f in (train.feats[i] for i in rng.permutation(len(train.feats))[:64])]
    calibrate(q, [torch.from_numpy(np.stack(crops[i : i + 16]).astype(np.float32)) for i in range(0, len(crops), 16)])

    return train_sed(f"QAT {type(model).__name__}", train, val, labels, teacher_logits=teacher_logits, epochs=epochs, lr=lr, alpha=alpha,
                     temperature=temperature, seed=seed, threads=threads, postprocess=postprocess, progress=progress, model=q,
                     before_epoch=freeze_observers_from(epochs - 1), transfer=transfer, dist=dist, state=state)
