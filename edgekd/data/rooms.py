"""Rooms and microphones: a bank of simulated room impulse responses and real background recordings.

``rir_bank`` simulates shoebox rooms with ``pyroomacoustics`` (image-source method): random room sizes, source and
microphone positions, RT60 drawn from 0.1-1.0 s and turned into wall absorption by Sabine's formula. The bank is
computed once per (count, seed) and cached as .npz; the same seed always gives the same bank.
``background_recordings`` loads the real recordings Debian ships (the same packages the SED data uses).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError

__all__ = ["RoomConfig", "RirBank", "rir_bank", "background_recordings"]


@dataclass(frozen=True)
class RoomConfig:
    n_rooms: int = 200
    rt60_s: tuple[float, float] = (0.1, 1.0)
    length_m: tuple[float, float] = (3.0, 10.0)
    width_m: tuple[float, float] = (2.5, 8.0)
    height_m: tuple[float, float] = (2.3, 4.0)
    distance_m: tuple[float, float] = (0.3, 5.0)  # source to microphone
    max_order: int = 60  # image-source reflections: enough for a 1 s tail in these rooms, 0.2 s of CPU each
    max_len_s: float = 1.0
    sample_rate: int = 16000
    seed: int = 0


@dataclass
class RirBank:
    rirs: np.ndarray  # (n, max_len) float32, direct path at its natural delay, unit energy
    rt60_s: np.ndarray  # (n,) the RT60 each room was built for
    distance_m: np.ndarray  # (n,)

    def __len__(self) -> int:
        return int(self.rirs.shape[0])


def _one_room(rng: np.random.Generator, cfg: RoomConfig) -> tuple[np.ndarray, float, float]:
    import pyroomacoustics as pra

    dim = np.array([rng.uniform(*cfg.length_m), rng.uniform(*cfg.width_m), rng.uniform(*cfg.height_m)])
    rt60 = float(rng.uniform(*cfg.rt60_s))
    try:
        absorption, order = pra.inverse_sabine(rt60, dim)
    except ValueError:  # the room is too small for that RT60: the most reverberant it can be
        absorption, order = 0.05, cfg.max_order
    margin = 0.25
    for _ in range(100):
        mic = np.array([rng.uniform(margin, dim[0] - margin), rng.uniform(margin, dim[1] - margin), rng.uniform(0.7, min(2.0, dim[2] - margin))])
        src = np.array([rng.uniform(margin, dim[0] - margin), rng.uniform(margin, dim[1] - margin), rng.uniform(1.0, min(2.0, dim[2] - margin))])
        d = float(np.linalg.norm(src - mic))
        if cfg.distance_m[0] <= d <= cfg.distance_m[1]:
            break
    room = pra.ShoeBox(dim, fs=cfg.sample_rate, materials=pra.Material(float(absorption)), max_order=int(min(order, cfg.max_order)))
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)[: int(cfg.max_len_s * cfg.sample_rate)]
    rir /= np.sqrt(np.sum(rir * rir)) + 1e-12
    return rir.astype(np.float32), rt60, d


def _cache_dir() -> Path:
    root = os.environ.get("EDGEKD_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "edgekd") / "rooms"


def rir_bank(cfg: RoomConfig = RoomConfig(), cache_dir: str | os.PathLike[str] | None = None) -> RirBank:
    """The bank for ``cfg`` (from the cache when it was made before; else simulated and cached)."""
    if cfg.n_rooms < 1:
        raise ConfigError("the room bank needs at least one room")
    key = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) if cache_dir is not None else _cache_dir()
    file = path / f"rirs-{key}.npz"
    if file.is_file():
        try:
            z = np.load(file)
            return RirBank(z["rirs"], z["rt60_s"], z["distance_m"])
        except (OSError, ValueError, KeyError):
            file.unlink(missing_ok=True)
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        raise ConfigError('room simulation needs pyroomacoustics: pip install "edgekd[train]"') from None
    rng = np.random.default_rng([cfg.seed, 0x524F4F4D])
    rooms = [_one_room(rng, cfg) for _ in range(cfg.n_rooms)]
    n = max(r.shape[0] for r, _, _ in rooms)
    rirs = np.zeros((len(rooms), n), dtype=np.float32)
    for i, (r, _, _) in enumerate(rooms):
        rirs[i, : r.shape[0]] = r
    bank = RirBank(rirs, np.array([t for _, t, _ in rooms], np.float32), np.array([d for _, _, d in rooms], np.float32))
    try:
        from edgekd.core.fsutil import atomic_write

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, rirs=bank.rirs, rt60_s=bank.rt60_s, distance_m=bank.distance_m)

        atomic_write(file, write)
    except OSError:
        pass  # an unwritable cache costs time, not correctness
    return bank


def background_recordings(max_files: int = 60, max_seconds: float = 20.0, seed: int = 0, sample_rate: int = 16000) -> list[np.ndarray]:
    """Real recordings from Debian's sound packages (ambiences, loops, alerts, instruments) as background noise,
    each at most ``max_seconds``; ``[]`` when none is installed."""
    from edgekd.data.synth_sed import ROOTS, load_any

    files = sorted(p for r in ROOTS if r.is_dir() for p in r.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".oga", ".ogg")
                   and p.stat().st_size > 20000)
    if not files:
        return []
    rng = np.random.default_rng(seed)
    picks = [files[int(i)] for i in rng.choice(len(files), size=min(max_files, len(files)), replace=False)]
    out = []
    for p in sorted(picks):
        try:
            x = load_any(p, sample_rate)[: int(max_seconds * sample_rate)]
        except Exception:  # noqa: BLE001 - an unreadable sample is skipped, not fatal
            continue
        if x.shape[0] >= sample_rate // 4 and float(np.sqrt(np.mean(x * x))) > 1e-4:
            out.append(x.astype(np.float32))
    return out
