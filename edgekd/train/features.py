"""Feature sets: a split of a Speech Commands-layout folder turned into log-mel arrays, with augmented views.

Training clips get ``views`` random augmentations each (view 0 is augmented too), computed once and
kept, so a frozen teacher's logits can be cached per view and the student sees exactly the input the
teacher scored ("consistent" distillation). Sets are cached as .npz under ``cache_dir``, keyed by a
hash of everything that defines them.

Two kinds of features from the same audio: ``logmel`` (the students' and the CNN teacher's input, ``(T, M)``) and
``speech-embedding`` (the frozen speech embedding's frames, ``(9, 96)``, the input of a teacher head on it). Row ``i``
of either kind comes from the same augmented audio (the views are seeded per clip), so a teacher that reads
embeddings labels exactly what the student hears: ``FeatureSet.spec`` rebuilds the aligned set of another kind.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.fsutil import atomic_write
from edgekd.data import SILENCE
from edgekd.data.augment import AugmentConfig, augment_clip, fit_to_length
from edgekd.data.rooms import RirBank, RoomConfig, background_recordings, rir_bank
from edgekd.data.speech_commands import Clip, SpeechCommands
from edgekd.data.synth_kws import single_threaded_blas
from edgekd.runtime.frontend import FrontendParams, LogMelFrontend

__all__ = ["FeatureSet", "build_feature_set", "aligned_feature_set", "KINDS"]

KINDS = ("logmel", "speech-embedding")


@dataclass
class FeatureSet:
    x: np.ndarray  # (N, T, M) float16
    y: np.ndarray  # (N,) int64
    clip: np.ndarray  # (N,) index of the source clip
    labels: tuple[str, ...]
    key: str
    files: tuple[str, ...] = ()  # source clip of each ``clip`` index, relative to the data folder ("@offset+length" for slices)
    spec: dict | None = None  # the arguments of ``build_feature_set`` that made it (to build an aligned set of another kind)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, fraction: float, seed: int) -> FeatureSet:
        """Keep a random ``fraction`` of the source clips (all views of each kept clip)."""
        clips = np.unique(self.clip)
        rng = np.random.default_rng(seed)
        keep = rng.choice(clips, size=max(1, int(round(fraction * clips.shape[0]))), replace=False)
        return self.rows(np.isin(self.clip, keep), f"{self.key}-sub{fraction}-{seed}")

    def rows(self, mask: np.ndarray, key: str) -> FeatureSet:
        """The rows where ``mask`` is true, as a set of its own named ``key`` (the source files stay indexed as before)."""
        return FeatureSet(self.x[mask], self.y[mask], self.clip[mask], self.labels, key, self.files)

    @property
    def files_sha256(self) -> str:
        """Digest of the source file list: which data these rows came from (logit caches and teachers check it)."""
        return hashlib.sha256("\n".join(self.files).encode()).hexdigest()

    @property
    def kind(self) -> str:
        return str((self.spec or {}).get("kind", "logmel"))


_W: dict[str, object] = {}


def _worker_init(*init: Any) -> None:
    """A pool worker: die with the parent, then ``_setup``. Never run in the main process (see ``die_with_parent``)."""
    from edgekd.core.procutil import die_with_parent

    die_with_parent()
    _setup(*init)


def _setup(babble: list[np.ndarray], params: dict, views: int, seed: int, n_samples: int, rirs: RirBank | None = None,
           backgrounds: list[np.ndarray] | None = None, kind: str = "logmel", augment: AugmentConfig | None = None) -> None:
    """What ``_featurize`` reads, in this process."""
    try:  # an initializer that raises makes the pool respawn workers forever: keep the error for the first job
        backbone = None
        if kind == "speech-embedding":
            from edgekd.train.teachers.speech_embedding import SpeechEmbedding

            backbone = SpeechEmbedding(threads=1)
        _W.update(babble=babble, fe=LogMelFrontend(FrontendParams.from_dict(params)), views=views, seed=seed, n=n_samples, rirs=rirs,
                  backgrounds=backgrounds, backbone=backbone, augment=augment or AugmentConfig(), init_error=None)
    except Exception as e:  # noqa: BLE001
        _W["init_error"] = f"{type(e).__name__}: {e}"


def _featurize(item: tuple[int, Clip]) -> np.ndarray:
    if _W.get("init_error"):
        raise ConfigError(f"feature worker could not start: {_W['init_error']}")
    i, clip = item
    fe: LogMelFrontend = _W["fe"]  # type: ignore[assignment]
    n: int = _W["n"]  # type: ignore[assignment]
    sr = fe.params.sample_rate
    x = fit_to_length(clip.load(sr), n)
    views: int = _W["views"]  # type: ignore[assignment]
    if views == 0:
        audio = [x]
    else:
        rng = np.random.default_rng([_W["seed"], i])  # type: ignore[list-item]
        speech = clip.label != SILENCE
        audio = [augment_clip(x, rng, _W["augment"], babble=_W["babble"], speech=speech, sample_rate=sr,  # type: ignore[arg-type]
                              rirs=_W["rirs"], backgrounds=_W["backgrounds"])  # type: ignore[arg-type]
                 for _ in range(views)]
    backbone = _W.get("backbone")
    if backbone is not None:
        return backbone.frames(np.stack(audio)).astype(np.float16)  # type: ignore[attr-defined]
    return np.stack([fe.features(a) for a in audio]).astype(np.float16)


def _relname(clip: Clip, root: Path) -> str:
    p = clip.path.resolve()
    name = str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
    return f"{name}@{clip.offset}+{clip.length}" if clip.length else name


def _cache_key(data_dir: str | os.PathLike[str], clips: list[Any], labels: tuple[str, ...], split: str, views: int, seed: int,
               params: FrontendParams, window_frames: int, rooms: bool, kind: str, augment: AugmentConfig | None = None) -> str:
    """What the features depend on (clips, split, views, frontend, rooms, augmentation when not the default, backbone),
    hashed: the cache file's key."""
    ident = {"root": str(Path(data_dir).resolve()), "n": len(clips), "first": clips[0].path.name, "last": clips[-1].path.name,
             "labels": labels, "split": split, "views": views, "seed": seed, "frontend": params.to_dict(), "T": window_frames, "v": 4}
    if rooms and views:
        ident["rooms"] = asdict(RoomConfig())
    if views and augment is not None and augment != AugmentConfig():
        ident["augment"] = asdict(augment)
    if kind != "logmel":
        from edgekd.train.teachers.speech_embedding import backbone_identity

        ident["kind"] = kind
        ident["backbone"] = dict(backbone_identity()["files"], mel="per clip")
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _featurize_all(items: list[tuple[int, Any]], init: tuple[Any, ...], workers: int,
                   progress: Callable[[int, int], None] | None) -> list[np.ndarray]:
    """Every clip's views, in order: in ``workers`` spawned processes (BLAS single-threaded) or in this one."""
    from edgekd.core.procutil import bounded_workers, spawn_imap

    chunks: list[np.ndarray] = []
    workers = bounded_workers(workers, len(items))
    if workers > 1:
        with single_threaded_blas():
            for k, arr in enumerate(spawn_imap(_featurize, items, workers, initializer=_worker_init, initargs=init, chunksize=64)):
                chunks.append(arr)
                if progress:
                    progress(k + 1, len(items))
    else:
        _setup(*init)
        for k, item in enumerate(items):
            chunks.append(_featurize(item))
            if progress:
                progress(k + 1, len(items))
    return chunks


def build_feature_set(
    data_dir: str | os.PathLike[str],
    labels: tuple[str, ...],
    split: str,
    *,
    views: int = 0,
    seed: int = 0,
    params: FrontendParams = FrontendParams(),
    window_frames: int = 98,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    rooms: bool = False,
    kind: str = "logmel",
    augment: AugmentConfig | None = None,
) -> FeatureSet:
    """Features of one split; ``views > 0`` makes that many augmented views per clip (training). ``rooms``: the
    views also go through simulated rooms (the cached RIR bank), real background recordings and clipping; ``augment``:
    the views' augmentation settings (None: ``AugmentConfig()``).
    ``kind``: ``logmel`` or ``speech-embedding`` (the frozen backbone's frames of the same audio)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown feature kind {kind!r}; choose one of: {', '.join(KINDS)}")
    spec = {"data_dir": str(data_dir), "labels": tuple(labels), "split": split, "views": views, "seed": seed, "params": params,
            "window_frames": window_frames, "rooms": rooms, "kind": kind, "augment": augment, "cache_dir": str(cache_dir) if cache_dir else None}
    ds = SpeechCommands(data_dir)
    clips = ds.clips(labels, split, sample_rate=params.sample_rate, seed=seed)
    key = _cache_key(data_dir, clips, labels, split, views, seed, params, window_frames, rooms, kind, augment)
    root = Path(data_dir).resolve()
    files = tuple(_relname(c, root) for c in clips)
    cache = Path(cache_dir) / f"features-{split}-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        z = np.load(cache)
        return FeatureSet(z["x"], z["y"], z["clip"], labels, key, files, spec)
    n_samples = (window_frames - 1) * params.hop_samples + params.window_samples
    babble: list[np.ndarray] = []
    if views:
        rng = np.random.default_rng(seed)
        speech = [c for c in clips if c.label != SILENCE]
        for j in rng.choice(len(speech), size=min(64, len(speech)), replace=False):
            babble.append(np.trim_zeros(speech[int(j)].load(params.sample_rate)))
    rirs = rir_bank(RoomConfig()) if rooms and views else None
    backgrounds = background_recordings(seed=seed) if rooms and views else None
    init = (babble, params.to_dict(), views, seed, n_samples, rirs, backgrounds, kind, augment)
    chunks = _featurize_all(list(enumerate(clips)), init, workers, progress)
    per = chunks[0].shape[0]
    x = np.concatenate(chunks)
    lab_idx = {lab: i for i, lab in enumerate(labels)}
    y = np.repeat(np.array([lab_idx[c.label] for c in clips], dtype=np.int64), per)
    clip_idx = np.repeat(np.arange(len(clips), dtype=np.int64), per)
    fs = FeatureSet(x, y, clip_idx, labels, key, files, spec)
    if cache is not None:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, x=x, y=y, clip=clip_idx)

        atomic_write(cache, write)
    return fs


def aligned_feature_set(fs: FeatureSet, kind: str, *, cache_dir: str | os.PathLike[str] | None = None, workers: int = 2,
                        progress: Callable[[int, int], None] | None = None) -> FeatureSet:
    """The features of ``kind`` for exactly the rows of ``fs`` (same clips, same augmented views, same order)."""
    if fs.spec is None:
        raise ConfigError("this feature set does not record how it was built, so no aligned set can be made from it")
    if kind == fs.kind:
        return fs
    spec = dict(fs.spec, kind=kind)
    data_dir, labels, split, own_cache = spec.pop("data_dir"), spec.pop("labels"), spec.pop("split"), spec.pop("cache_dir")
    other = build_feature_set(data_dir, labels, split, cache_dir=cache_dir or own_cache, workers=workers, progress=progress, **spec)
    if len(other) != len(fs) or not np.array_equal(other.clip, fs.clip) or not np.array_equal(other.y, fs.y):
        raise ConfigError(f"the {kind} features of {data_dir} do not line up with its {fs.kind} features (the data changed?); "
                          f"delete the feature cache and retry")
    return other
