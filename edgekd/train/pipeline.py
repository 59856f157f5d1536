"""One training run from a data folder to a checkpoint: features, cached teacher logits, training, test accuracy."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Union

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.units import WINDOW_FRAMES
from edgekd.data import KWS12_LABELS
from edgekd.data.augment import AugmentConfig
from edgekd.runtime.frontend import FrontendParams
from edgekd.train.checkpoint import Checkpoint
from edgekd.train.config import TrainConfig
from edgekd.train.dist import DistContext
from edgekd.train.features import FeatureSet, build_feature_set
from edgekd.train.loop import Resume

__all__ = ["KwsData", "load_kws_data", "train_kws", "embedding_targets", "load_transfer", "concat_sets"]



@dataclass
class KwsData:
    root: Path
    train: FeatureSet
    validation: FeatureSet
    test: FeatureSet
    views: int


def _bar(desc: str, enabled: bool):  # type: ignore[no-untyped-def]
    if not enabled:
        return None, None
    from edgekd.core.progress import Progress

    bar = Progress(desc, unit="clip")
    return bar, bar.callback()


Teachers = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], None]


def _teachers(teacher: Teachers) -> list[str | os.PathLike[str]]:
    """One teacher checkpoint, several (an ensemble: their logits averaged), or none."""
    if teacher is None:
        return []
    return [teacher] if isinstance(teacher, (str, os.PathLike)) else list(teacher)


def load_kws_data(
    data_dir: str | os.PathLike[str],
    *,
    labels: tuple[str, ...] = KWS12_LABELS,
    views: int = 3,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 2,
    progress: bool = True,
    rooms: bool = False,
    augment: AugmentConfig | None = None,
) -> KwsData:
    """Features of the train (augmented views), validation and test splits; ``rooms``: training views also go
    through simulated rooms, real background recordings and clipping; ``augment``: the views' augmentation settings
    (None: ``AugmentConfig()``)."""
    sets = {}
    for split, v in (("train", views), ("validation", 0), ("test", 0)):
        bar, cb = _bar(f"features {split}", progress)
        sets[split] = build_feature_set(data_dir, labels, split, views=v, seed=seed, window_frames=WINDOW_FRAMES,
                                        cache_dir=cache_dir, workers=workers, progress=cb, rooms=rooms, augment=augment)
        if bar is not None:
            bar.close()
    return KwsData(Path(data_dir), sets["train"], sets["validation"], sets["test"], views)


def train_kws(
    data: KwsData,
    out: str | os.PathLike[str],
    cfg: TrainConfig,
    *,
    teacher: Teachers = None,
    teacher_cache: str | os.PathLike[str] | None = None,
    subset: float = 1.0,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    dist: DistContext | None = None,
    state: Resume | None = None,
    soft_targets: np.ndarray | None = None,
    extra_provenance: dict[str, Any] | None = None,
    transfer: str | os.PathLike[str] | None = None,
) -> Checkpoint:
    """Train one model and save its checkpoint (with test accuracy measured in torch). Under torchrun (``dist``)
    every rank trains its share and only rank 0 writes; ``state`` makes the run resumable. ``soft_targets``:
    teacher logits per training row computed elsewhere (e.g. by an ONNX teacher on raw audio). ``transfer``: a transfer
    set whose windows the teacher labels and the student learns with the distillation term only."""
    from edgekd.train.kws_objective import train_model
    from edgekd.train.loop import accuracy

    if not 0.0 < subset <= 1.0:
        raise ConfigError(f"--subset must be in (0, 1], got {subset}")
    train = data.train if subset == 1.0 else data.train.subset(subset, cfg.seed)
    provenance: dict[str, Any] = {"data": str(data.root), "views": data.views, "subset": subset}
    meta = data.root / "synth_meta.json"
    if meta.is_file():
        provenance["data_generator"] = json.loads(meta.read_text())["generator"]
    provenance.update(extra_provenance or {})
    d = dist or DistContext()
    t_logits = _teacher_targets(data, train, subset, cfg, teacher, teacher_cache, cache_dir, soft_targets, d, provenance)
    tset = None
    if transfer is not None:
        train, t_logits, tset = _with_transfer(data, train, t_logits, subset, cfg, teacher, transfer, cache_dir, d, progress, provenance)
    feature_targets = None
    if cfg.feature_kd > 0:
        if subset != 1.0:
            raise ConfigError("feature distillation (--feature-kd) trains on the whole training set: drop --subset")
        feature_targets = embedding_targets([data.train] + ([tset] if tset is not None else []), cache_dir=cache_dir, dist=d)
        provenance["feature_kd"] = {"weight": cfg.feature_kd, "target": "speech-embedding, mean over its 9 frames, standardized per dim"}
    model, history = train_model(cfg, train, data.validation, teacher_logits=t_logits, progress=progress, dist=d, state=state,
                                 feature_targets=feature_targets)
    ckpt = _kws_checkpoint(cfg, data, model, history, accuracy(model, data.test, d), t_logits is not None, d, provenance)
    _finish(ckpt, out, d, state)
    return ckpt


def _teacher_targets(data: KwsData, train: FeatureSet, subset: float, cfg: TrainConfig, teacher: Teachers,
                     teacher_cache: str | os.PathLike[str] | None, cache_dir: str | os.PathLike[str] | None,
                     soft_targets: np.ndarray | None, d: DistContext, provenance: dict[str, Any]) -> Any:
    """The teacher logits of the training rows (given, cached or computed), or None without a teacher."""
    from edgekd.train.logit_cache import ensemble_logits

    if soft_targets is not None:
        if soft_targets.shape[0] != len(data.train) or subset != 1.0:
            raise ConfigError(f"soft targets for {soft_targets.shape[0]} rows, but the training set has {len(data.train)} (and no --subset)")
        return soft_targets
    if not _teachers(teacher) and teacher_cache is None:
        return None
    cache, who = ensemble_logits(data.train, FrontendParams().to_dict(), _teachers(teacher), cache=teacher_cache, cache_root=cache_dir,
                                 threads=cfg.threads, dist=d)
    provenance.update(who)
    return cache if subset == 1.0 else cache[np.nonzero(np.isin(data.train.clip, np.unique(train.clip)))[0]]


def _with_transfer(data: KwsData, train: FeatureSet, t_logits: Any, subset: float, cfg: TrainConfig, teacher: Teachers,
                   transfer: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None, d: DistContext, progress: bool,
                   provenance: dict[str, Any]) -> tuple[FeatureSet, np.ndarray, FeatureSet]:
    """The training rows with the transfer windows appended, and their teacher logits (the only targets of those)."""
    from edgekd.train.logit_cache import ensemble_logits

    if t_logits is None or not _teachers(teacher):
        raise ConfigError("--transfer needs --teacher CKPT: the teacher's logits are the only targets of the transfer windows "
                          "(a --teacher-cache holds the training rows only)")
    if subset != 1.0:
        raise ConfigError("--transfer trains on the whole training set: drop --subset")
    tset = load_transfer(transfer, rooms=bool((data.train.spec or {}).get("rooms")), cache_dir=cache_dir, dist=d, progress=progress)
    t_tl, _ = ensemble_logits(tset, FrontendParams().to_dict(), _teachers(teacher), cache_root=cache_dir, threads=cfg.threads, dist=d)
    provenance["transfer"] = {"dir": str(transfer), "windows": len(tset), "features": tset.key}
    return concat_sets(train, tset), np.concatenate([_as_array(t_logits), _as_array(t_tl)]), tset


def _kws_checkpoint(cfg: TrainConfig, data: KwsData, model: Any, history: dict[str, Any], test_acc: float, distilled: bool,
                    d: DistContext, provenance: dict[str, Any]) -> Checkpoint:
    from edgekd.train.profile import count_macs, count_params

    n_mels = data.train.x.shape[2]
    return Checkpoint(
        arch=cfg.arch,
        labels=tuple(data.train.labels),
        n_mels=n_mels,
        frontend=FrontendParams().to_dict(),
        window_frames=WINDOW_FRAMES,
        state_dict={k: v.contiguous() for k, v in model.state_dict().items()},
        config=dict(cfg.to_dict(), distilled=distilled),
        metrics={
            "val_accuracy": history["best_val_accuracy"],
            "test_accuracy_torch": test_acc,
            "params": count_params(model),
            "macs_per_inference": count_macs(model, (1, WINDOW_FRAMES, n_mels)),
            "train_seconds": history["train_seconds"],
            "train_examples_seen": history["train_examples_seen"],
            "train_steps": history["steps"],
            "final_train_loss": history["final_loss"],
            "processes": d.world_size,
        },
        provenance=provenance,
    )


def embedding_targets(sets: FeatureSet | list[FeatureSet], *, cache_dir: str | os.PathLike[str] | None = None,
                      dist: DistContext | None = None) -> np.ndarray:
    """Feature-distillation targets for every row of ``sets`` (concatenated): the speech embedding of the same view,
    averaged over its frames and standardized per dimension over all those rows, ``(rows, 96)`` float32."""
    from edgekd.train.teachers.embedding_teacher import embedding_inputs

    parts = [sets] if isinstance(sets, FeatureSet) else sets
    e = np.concatenate([embedding_inputs(fs, cache_dir=cache_dir, dist=dist).x.astype(np.float32).mean(axis=1) for fs in parts])
    return ((e - e.mean(axis=0)) / e.std(axis=0).clip(1e-3)).astype(np.float32)


def load_transfer(folder: str | os.PathLike[str], *, rooms: bool = True, seed: int = 0, cache_dir: str | os.PathLike[str] | None = None,
                  dist: DistContext | None = None, progress: bool = True) -> FeatureSet:
    """The windows of a transfer set (``edgekd data transfer``) as log-mel features: one augmented view each (rooms
    as for the training views), cached like any feature set; labels are ``(_transfer_,)`` (none of their own)."""
    from edgekd.data.transfer import TRANSFER

    root = Path(folder)
    if not (root / "transfer_meta.json").is_file():
        raise ConfigError(f"--transfer {root}: not a transfer set (no transfer_meta.json); make one with `edgekd data transfer`")
    d = dist or DistContext()
    with d.main_first():
        bar, cb = _bar("features transfer", progress and d.is_main)
        fs = build_feature_set(root, (TRANSFER,), "all", views=1, seed=seed, window_frames=WINDOW_FRAMES, cache_dir=cache_dir,
                               progress=cb, rooms=rooms)
        if bar is not None:
            bar.close()
    return fs


def concat_sets(labelled: FeatureSet, unlabelled: FeatureSet) -> FeatureSet:
    """Training rows followed by transfer rows, whose label is -1 (``kd_loss`` gives them the distillation term only)."""
    return FeatureSet(np.concatenate([labelled.x, unlabelled.x]), np.concatenate([labelled.y, np.full(len(unlabelled), -1, dtype=np.int64)]),
                      np.concatenate([labelled.clip, unlabelled.clip + len(labelled.files)]), labelled.labels,
                      f"{labelled.key}+{unlabelled.key}", labelled.files + unlabelled.files)


def _as_array(logits: Any) -> np.ndarray:
    return logits.to_array() if hasattr(logits, "to_array") else np.asarray(logits, dtype=np.float32)


def _finish(ckpt: Checkpoint, out: str | os.PathLike[str], d: DistContext, state: Resume | None) -> None:
    """Rank 0 writes the checkpoint, then drops the resumable state (the run is complete)."""
    if d.is_main:
        ckpt.save(out)
        if state is not None:
            state.path.unlink(missing_ok=True)
    d.barrier()


def balanced_classifier(src: Checkpoint, train_y: np.ndarray, labels: Sequence[str]) -> Checkpoint:
    """``src`` with the training labels' log prior (``distill.label_log_prior`` of ``train_y``, indices into ``labels``:
    the training rows, or the training clips when every clip has as many views) taken off its classifier's bias, marked
    ``balance_labels``: post-hoc logit adjustment (Menon et al., 2021). Its logits then score the labels as if they were
    equally frequent, and the logit-adjusted loss of further training sees the logits it was trained on."""
    import torch
    from torch import nn

    from edgekd.train.distill import label_log_prior

    if src.is_qat:
        raise ConfigError("a QAT checkpoint: balance the float checkpoint (or give train qat --balance-labels)")
    model = src.build()
    heads = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == len(src.labels)]
    if not heads or f"{heads[-1]}.bias" not in src.state_dict:
        raise ConfigError(f"{src.arch}: no classifier layer with a bias to balance; train the student with --balance-labels instead")
    if list(labels) != list(src.labels):
        raise ConfigError(f"the data's labels {list(labels)} are not the checkpoint's {list(src.labels)}")
    key = f"{heads[-1]}.bias"
    state = dict(src.state_dict)
    state[key] = state[key] - label_log_prior(torch.from_numpy(np.asarray(train_y, dtype=np.int64)), len(src.labels)).to(state[key].dtype)
    # the accuracies measured in training are the unbalanced model's: kept under another name, not as this one's
    metrics = {(f"{k}_before_balancing" if "accuracy" in k else k): v for k, v in src.metrics.items()}
    return replace(src, state_dict=state, config=dict(src.config, balance_labels=True), metrics=metrics,
                   provenance=dict(src.provenance, balanced_after_training=True))


def _calibrated_qat_model(src: Checkpoint, data: KwsData, seed: int) -> Any:
    """The float model converted for QAT, its observers calibrated on up to 1,024 training rows (seeded)."""
    import torch

    from edgekd.train.qat import calibrate, to_qat

    torch.manual_seed(seed)
    model = to_qat(src.build())
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data.train), size=min(len(data.train), 1024), replace=False)
    calibrate(model, [torch.from_numpy(data.train.x[np.sort(idx[i : i + 256])].astype(np.float32)) for i in range(0, idx.shape[0], 256)])
    return model


def calibrate_ranges(model: Any, train: FeatureSet, validation: FeatureSet, seed: int, dist: DistContext,
                     batch_size: int = 256) -> tuple[Any, dict[str, Any]]:
    """Int8 without fine-tuning: a QAT model's observers follow every row of ``train`` once (shuffled, in batches; min/max
    of the first, moving average after), weights untouched. Measured on "smart mirror" (README): the fine-tuning of
    the recipe's two QAT epochs cost real voices what this keeps. Returns the model and a history like ``fit``'s."""
    import time

    import torch

    from edgekd.train.loop import accuracy
    from edgekd.train.qat import calibrate

    t0 = time.perf_counter()
    order = np.random.default_rng(seed).permutation(len(train))
    calibrate(model, (torch.from_numpy(np.asarray(train.x[np.sort(order[i : i + batch_size])], dtype=np.float32))
                      for i in range(0, order.shape[0], batch_size)))
    return model, {"best_val_accuracy": accuracy(model, validation, dist), "train_seconds": time.perf_counter() - t0, "steps": 0,
                   "final_loss": None}


def train_qat(
    data: KwsData,
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    teacher: Teachers = None,
    epochs: int = 2,
    lr: float = 5e-4,
    freeze_observers_epoch: int | None = None,
    seed: int = 0,
    threads: int = 2,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    teacher_cache: str | os.PathLike[str] | None = None,
    dist: DistContext | None = None,
    state: Resume | None = None,
    soft_targets: np.ndarray | None = None,
    transfer: str | os.PathLike[str] | None = None,
    balance_labels: bool = False,
) -> Checkpoint:
    """Fine-tune a trained float student with fake int8 quantization; KD on cached teacher logits if given, or on
    ``soft_targets`` (teacher logits per training row computed elsewhere, as for ``train_kws``). ``transfer``: the
    transfer set the float student was distilled on, whose windows stay in the fine-tuning (distillation term only).
    ``epochs=0``: no fine-tuning, the float weights as they are; the int8 ranges are observed over every training row
    (and transfer window) instead (``calibrate_ranges``). ``balance_labels``: a student trained on the label counts as
    they are is balanced first (``balanced_classifier``) and fine-tuned with the logit-adjusted loss (a student trained
    with ``TrainConfig.balance_labels`` keeps it anyway)."""
    from edgekd.train.kws_objective import train_model
    from edgekd.train.logit_cache import ensemble_logits
    from edgekd.train.loop import accuracy
    from edgekd.train.qat import freeze_observers_from

    src = Checkpoint.load(checkpoint)
    if src.config.get("qat"):
        raise ConfigError(f"{checkpoint}: already QAT-trained; give the float checkpoint")
    if balance_labels and not src.config.get("balance_labels"):
        src = balanced_classifier(src, data.train.y, data.train.labels)
    float_test = src.metrics.get("test_accuracy_torch")
    if float_test is None:  # a balanced checkpoint: score the float model it is
        float_test = accuracy(src.build(), data.test, dist)
    model = _calibrated_qat_model(src, data, seed)
    t_logits = None
    provenance = dict(src.provenance, qat_from=Path(checkpoint).name)
    d = dist or DistContext()
    if soft_targets is not None:
        if soft_targets.shape[0] != len(data.train):
            raise ConfigError(f"soft targets for {soft_targets.shape[0]} rows, but the training set has {len(data.train)}")
        t_logits = soft_targets
    elif _teachers(teacher) or teacher_cache is not None:
        t_logits, who = ensemble_logits(data.train, FrontendParams().to_dict(), _teachers(teacher), cache=teacher_cache,
                                        cache_root=cache_dir, threads=threads, dist=d)
        provenance["qat_teacher_sha256"] = who["teacher_sha256"]
        provenance["qat_teacher"] = who["teacher"]
    freeze_at = epochs - 1 if freeze_observers_epoch is None else freeze_observers_epoch

    cfg = TrainConfig(arch=src.arch, epochs=epochs, lr=lr, seed=seed, threads=threads,
                      alpha=float(src.config.get("alpha", 0.7)) if t_logits is not None else 0.0,
                      temperature=float(src.config.get("temperature", 3.0)), specaugment=False,
                      clean_negatives=bool(src.config.get("clean_negatives", False)),
                      balance_labels=bool(src.config.get("balance_labels", False)))
    train = data.train
    if transfer is not None:
        train, t_logits, _ = _with_transfer(data, train, t_logits, 1.0, cfg, teacher, transfer, cache_dir, d, progress, provenance)
    if epochs == 0:
        model, history = calibrate_ranges(model, train, data.validation, seed, d)
    else:
        model, history = train_model(cfg, train, data.validation, teacher_logits=t_logits, progress=progress,
                                     model=model, before_epoch=freeze_observers_from(freeze_at), dist=d, state=state)
    ckpt = Checkpoint(
        arch=src.arch, labels=src.labels, n_mels=src.n_mels, frontend=src.frontend, window_frames=src.window_frames,
        state_dict={k: v.contiguous() for k, v in model.state_dict().items()},
        config=dict(cfg.to_dict(), qat=True, qat_weight_bits=model.weight_bits, distilled=t_logits is not None, float_config=src.config),
        metrics=dict(src.metrics, val_accuracy=history["best_val_accuracy"], test_accuracy_torch=accuracy(model, data.test, d),
                     float_test_accuracy_torch=float_test, qat_train_seconds=history["train_seconds"],
                     qat_train_steps=history["steps"], qat_final_train_loss=history["final_loss"]),
        provenance=provenance,
    )
    _finish(ckpt, out, d, state)
    return ckpt
