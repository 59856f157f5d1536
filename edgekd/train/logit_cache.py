"""The teacher-logit cache: a dataset scored once by a frozen teacher, in shards, read memory-mapped.

Layout of a cache folder::

    index.json                     written last: format, teacher sha256 + labels, frontend parameters,
                                   the feature set's key, row count and source file list, one entry per shard
    shard-00000-of-00002.npy       float32 logits for rows [start, stop) of the feature set
    shard-00001-of-00002.npy

Shards are scored in parallel: one per rank under torchrun, or one per worker process (``workers``). Each
shard file is written atomically, the index after all of them, so a half-built cache is never mistaken for
a whole one. ``LogitCache.open`` refuses a cache made by another teacher, frontend or data, with one line.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.fsutil import atomic_write, atomic_write_text
from edgekd.runtime.manifest import sha256_file
from edgekd.train.dist import DistContext
from edgekd.train.features import FeatureSet

__all__ = ["LogitCache", "build_logit_cache", "default_cache_dir", "teacher_logits", "ensemble_logits"]

FORMAT = "edgekd-logit-cache-1"
INDEX = "index.json"


def default_cache_dir(cache_root: str | os.PathLike[str], teacher_sha256: str, fs: FeatureSet) -> Path:
    """Where ``edgekd train --teacher`` keeps the cache it builds itself."""
    return Path(cache_root) / f"teacher-{teacher_sha256[:16]}-{fs.key}"


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))


class LogitCache:
    """Memory-mapped teacher logits for every row of one feature set; ``cache[rows]`` reads only those rows."""

    def __init__(self, root: Path, index: dict[str, Any]) -> None:
        self.root = root
        self.index = index
        self._shards = [np.load(root / s["file"], mmap_mode="r") for s in index["shards"]]
        self._starts = np.array([s["start"] for s in index["shards"]], dtype=np.int64)
        self.rows = int(index["features"]["rows"])
        self.n_labels = len(index["teacher"]["labels"])

    def __len__(self) -> int:
        return self.rows

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.n_labels)

    def __getitem__(self, rows: Any) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= self.rows):
            raise IndexError(f"row out of range 0..{self.rows - 1}")
        out = np.empty((idx.shape[0], self.n_labels), dtype=np.float32)
        which = np.searchsorted(self._starts, idx, side="right") - 1
        for k in np.unique(which):
            m = which == k
            out[m] = self._shards[int(k)][idx[m] - self._starts[k]]
        return out

    def to_array(self) -> np.ndarray:
        return np.concatenate([np.asarray(s) for s in self._shards]) if self._shards else np.zeros((0, self.n_labels), np.float32)

    @classmethod
    def open(cls, root: str | os.PathLike[str], fs: FeatureSet, frontend: dict[str, Any], teacher_sha256: str | None = None) -> LogitCache:
        """Open and check a cache against the data, frontend and (if given) teacher it is about to be used with."""
        root = Path(root)
        fix = "rebuild it with `edgekd teacher cache` (or delete it and let training rebuild it)"
        try:
            index = json.loads((root / INDEX).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{root}: no {INDEX}, so no complete teacher-logit cache here; {fix}") from None
        except ValueError as e:
            raise ConfigError(f"{root / INDEX}: unreadable ({e}); {fix}") from None
        if index.get("format") != FORMAT:
            raise ConfigError(f"{root}: not an edgekd teacher-logit cache (format {index.get('format')!r}); {fix}")
        t = index["teacher"]
        if teacher_sha256 is not None and t["sha256"] != teacher_sha256:
            raise ConfigError(f"{root}: this teacher-logit cache was made by another teacher ({t.get('name')}, sha256 {t['sha256'][:12]}..., "
                              f"not {teacher_sha256[:12]}...); {fix}")
        if index["frontend"] != frontend:
            raise ConfigError(f"{root}: this teacher-logit cache was made with another frontend ({_diff(index['frontend'], frontend)}); {fix}")
        f = index["features"]
        if f["key"] != fs.key or f["rows"] != len(fs) or f["files_sha256"] != fs.files_sha256:
            raise ConfigError(f"{root}: this teacher-logit cache was made for other data (features {f['key']}, {f['rows']} rows; "
                              f"here {fs.key}, {len(fs)} rows); {fix}")
        if tuple(t["labels"]) != tuple(fs.labels) and not _unlabelled(fs):
            raise ConfigError(f"{root}: teacher labels {tuple(t['labels'])} differ from the data labels {tuple(fs.labels)}")
        for s in index["shards"]:
            p = root / s["file"]
            if not p.is_file():
                raise ConfigError(f"{p}: shard missing from the teacher-logit cache; {fix}")
        return cls(root, index)


def _score(teacher_path: str, x: np.ndarray, threads: int, fold: np.ndarray | None = None) -> np.ndarray:
    from edgekd.train.teachers import TorchTeacher

    return TorchTeacher(teacher_path, threads=threads).logits(x, fold).astype(np.float32)


def _write_shard(path: Path, logits: np.ndarray) -> str:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, logits)

    atomic_write(path, write)
    return sha256_file(path)


def _shard_name(k: int, n: int) -> str:
    return f"shard-{k:05d}-of-{n:05d}.npy"


def _score_shard_job(args: tuple[str, np.ndarray, int, str, np.ndarray | None]) -> str:
    teacher_path, x, threads, out, fold = args
    return _write_shard(Path(out), _score(teacher_path, x, threads, fold))


def _unlabelled(fs: FeatureSet) -> bool:
    """A transfer set (``edgekd data transfer``): no labels of its own, so any teacher may label it."""
    from edgekd.data.transfer import TRANSFER

    return tuple(fs.labels) == (TRANSFER,)


def _backbone(ckpt: Any) -> dict[str, Any]:
    """A teacher on a frozen backbone names its files (sha256) in the cache index, and so in its students' provenance."""
    b = ckpt.provenance.get("backbone")
    return {"backbone": {"name": b["name"], "files": b["files"], "licence": b["licence"]}} if b else {}


def _teacher_inputs(ckpt: Any, fs: FeatureSet, d: DistContext) -> tuple[FeatureSet, np.ndarray | None]:
    """What the teacher reads for the rows of ``fs``: the log-mels themselves, or the speech-embedding frames of the
    same views; and per row the cross-fitting head that never saw the clip, where the teacher was trained on it (the
    main head, -1, for clips it never saw: false-accept windows mined after it, another split), else None."""
    if ckpt.config.get("input", "logmel") == "logmel":
        return fs, None
    from edgekd.train.teachers.embedding_teacher import embedding_inputs, fold_of

    src = embedding_inputs(fs, dist=d)
    folds = int(ckpt.config.get("folds", 0))
    if not folds:
        return src, None
    trained = ckpt.provenance.get("train_files")
    if trained is not None:  # teachers since 2026-12-04 list their files: the rows of those clips, whatever else fs holds
        fold = fold_of(fs, folds, trained)
        return (src, fold) if (fold >= 0).any() else (src, None)
    if ckpt.provenance.get("train_files_sha256") == fs.files_sha256:  # earlier teachers: only the very same files
        return src, fold_of(fs, folds)
    return src, None


def build_logit_cache(
    teacher: str | os.PathLike[str],
    fs: FeatureSet,
    out: str | os.PathLike[str],
    *,
    frontend: dict[str, Any],
    workers: int = 1,
    threads: int = 1,
    dist: DistContext | None = None,
    notice: Callable[[str], None] | None = None,
) -> LogitCache:
    """Score every row of ``fs`` with the checkpoint ``teacher`` into ``out``: one shard per torchrun rank, else one
    per worker process. Every rank returns the opened cache."""
    d = dist or DistContext()
    out = Path(out)
    teacher = str(teacher)
    sha = sha256_file(teacher)
    from edgekd.train.checkpoint import Checkpoint

    ckpt = Checkpoint.load(teacher)
    labels = ckpt.labels
    if tuple(labels) != tuple(fs.labels) and not _unlabelled(fs):
        raise ConfigError(f"teacher labels {tuple(labels)} differ from the data labels {tuple(fs.labels)}")
    src, fold = _teacher_inputs(ckpt, fs, d)
    n = d.world_size if d.enabled else max(1, int(workers))
    bounds = np.linspace(0, len(fs), n + 1).round().astype(int)
    out.mkdir(parents=True, exist_ok=True)
    if d.is_main:
        (out / INDEX).unlink(missing_ok=True)  # the cache is incomplete from here until the new index is written
    d.barrier()

    def job(k: int) -> tuple[str, np.ndarray, int, str, np.ndarray | None]:
        rows = slice(bounds[k], bounds[k + 1])
        return teacher, np.asarray(src.x[rows]), threads, str(out / _shard_name(k, n)), None if fold is None else fold[rows]

    if d.enabled:
        _score_shard_job(job(d.rank))
    elif n == 1:
        _score_shard_job(job(0))
    else:
        from edgekd.core.procutil import spawn_imap

        for _ in spawn_imap(_score_shard_job, [job(k) for k in range(n)], n):
            pass
    d.barrier()
    if d.is_main:
        teacher_block = {"sha256": sha, "name": Path(teacher).name, "labels": list(labels), "input": src.kind,
                         "crossfit": fold is not None, **_backbone(ckpt)}
        _write_index(out, fs, frontend, teacher_block, bounds, d)
        if notice is not None:
            notice(f"teacher-logit cache {out}: {len(fs)} rows in {n} shard(s)")
    d.barrier()
    return LogitCache.open(out, fs, frontend, sha)


def _write_index(out: Path, fs: FeatureSet, frontend: dict[str, Any], teacher: dict[str, Any], bounds: np.ndarray, d: DistContext) -> None:
    """The index that makes the shards a cache (written last, atomically); shards of an earlier build are removed."""
    n = bounds.shape[0] - 1
    shards = [{"file": _shard_name(k, n), "start": int(bounds[k]), "stop": int(bounds[k + 1]),
               "sha256": sha256_file(out / _shard_name(k, n))} for k in range(n)]
    for stale in out.glob("shard-*.npy"):
        if stale.name not in {s["file"] for s in shards}:
            stale.unlink()
    index = {
        "format": FORMAT,
        "teacher": teacher,
        "frontend": frontend,
        "features": {"key": fs.key, "rows": len(fs), "files": list(fs.files), "files_sha256": fs.files_sha256},
        "dtype": "float32",
        "shards": shards,
        "built_by": {"processes": n, "mode": "torchrun" if d.enabled else "workers"},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(out / INDEX, json.dumps(index, indent=1) + "\n")


def teacher_logits(
    fs: FeatureSet,
    frontend: dict[str, Any],
    *,
    teacher: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    cache_root: str | os.PathLike[str] | None = None,
    threads: int = 1,
    dist: DistContext | None = None,
) -> LogitCache:
    """The logits a student distils from: a given ``cache`` (checked against ``teacher`` when both are given), or the
    cache of ``teacher`` under ``cache_root``, built (in shards under torchrun) when it is not there yet."""
    d = dist or DistContext()
    sha = sha256_file(teacher) if teacher is not None else None
    if cache is not None:
        return LogitCache.open(cache, fs, frontend, sha)
    if teacher is None or sha is None:
        raise ConfigError("distillation needs --teacher CKPT or --teacher-cache DIR")
    if cache_root is None:
        if d.enabled:
            raise ConfigError("under torchrun give --cache-dir on a shared file system for the teacher-logit cache")
        import tempfile

        cache_root = tempfile.mkdtemp(prefix="edgekd-logits-")
    root = default_cache_dir(cache_root, sha, fs)
    complete = (root / INDEX).is_file()
    d.barrier()  # every rank has looked before anyone starts rebuilding
    if complete:
        try:
            return LogitCache.open(root, fs, frontend, sha)
        except ConfigError:
            pass  # a damaged cache under our own name: rebuild it below
    return build_logit_cache(teacher, fs, root, frontend=frontend, threads=threads, dist=d)


def ensemble_logits(
    fs: FeatureSet,
    frontend: dict[str, Any],
    teachers: list[str | os.PathLike[str]],
    *,
    cache: str | os.PathLike[str] | None = None,
    cache_root: str | os.PathLike[str] | None = None,
    threads: int = 1,
    dist: DistContext | None = None,
) -> tuple[LogitCache | np.ndarray, dict[str, Any]]:
    """The logits a student distils from, with their provenance. One teacher (or a prebuilt ``cache``): its cache,
    memory-mapped. Several: each one's cache, then the mean of their logits per row (an ensemble of teachers that
    read different features, e.g. the speech-embedding head and the log-mel CNN, whose errors differ)."""
    if cache is not None and len(teachers) > 1:
        raise ConfigError("--teacher-cache holds one teacher's logits: give a single --teacher with it")
    caches = [teacher_logits(fs, frontend, teacher=t, cache=cache, cache_root=cache_root, threads=threads, dist=dist)
              for t in (teachers or [None])]
    members = [{"name": c.index["teacher"]["name"], "sha256": c.index["teacher"]["sha256"],
                "input": c.index["teacher"].get("input", "logmel"), "crossfit": bool(c.index["teacher"].get("crossfit", False)),
                **({"backbone": c.index["teacher"]["backbone"]} if "backbone" in c.index["teacher"] else {})}
               for c in caches]
    if len(caches) == 1:
        m = members[0]
        return caches[0], {"teacher": m["name"], "teacher_sha256": m["sha256"], **({"teacher_backbone": m["backbone"]} if "backbone" in m else {})}
    ident = hashlib.sha256("".join(m["sha256"] for m in members).encode()).hexdigest()
    mean = np.mean([c.to_array() for c in caches], axis=0).astype(np.float32)
    return mean, {"teacher": " + ".join(m["name"] for m in members), "teacher_sha256": ident, "teachers": members,
                  "teacher_combination": "mean of the members' logits"}
