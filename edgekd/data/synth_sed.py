"""``synth_sed``: DESED-style soundscapes from real recordings Debian ships, plus synthesized speech and tones.

Event classes are built from the recordings of ``sonic-pi-samples``, ``sound-theme-freedesktop``,
``sound-icons`` and ``gnome-audio`` (grouped by file-name patterns), plus espeak-ng phrases and synthetic
beeps. Each class's source recordings are split between train and test by a stable hash of the file name, so
test soundscapes hold recordings the model never heard (speech: held-out voice variants; tones: other seeds).
A soundscape is 10 s: a background (coloured noise or hum, sometimes an ambient or vinyl-crackle recording),
1-5 events at random times, gains set by an SNR against the background, overlaps allowed. Written: audio per
split and a DCASE tsv per split (``filename onset offset event_label``).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.units import SAMPLE_RATE
from edgekd.data.augment import colored_noise
from edgekd.runtime.wav import resample, write_wav

__all__ = ["SED_CLASSES", "SynthSedConfig", "source_recordings", "esc50_sources", "folder_sources", "synth_sed", "load_any"]

ROOTS = (Path("/usr/share/sonic-pi/samples"), Path("/usr/share/sounds"))
# class -> file-name patterns (regular expressions on the file's stem)
SED_CLASSES: dict[str, str] = {
    "kick": r"^(bd_|drum_bass_|drum_heavy_kick)",
    "snare": r"^(sn_|drum_snare_)",
    "cymbal": r"^(drum_cymbal_|drum_splash_|cymbaly)",
    "tabla": r"^tabla_",
    "electronic": r"^(elec_|glitch_(?!bass))",
    "chime": r"^(bell|message|complete|dialog-|window-|device-|service-|power-|network-|message-new|trash-empty|pisk-)",
    "phone_alarm": r"^(phone|alarm-clock|suspend-error)",
    "keys": r"^(cembalo|piano|klavichord|electric-piano|guitar|chord)",
    "speech": r"$^",  # synthesized
    "beep": r"$^",  # synthesized
}
BACKGROUND = r"^(ambi_|vinyl_|loop_drone)"


@dataclass(frozen=True)
class SynthSedConfig:
    scapes_train: int = 400
    scapes_validation: int = 60
    scapes_test: int = 120
    scapes_transfer: int = 0  # unlabelled soundscapes for distillation (train recordings; audio/transfer/, no tsv)
    seconds: float = 10.0
    max_events: int = 5
    snr_db: tuple[float, float] = (0.0, 20.0)
    test_fraction: float = 0.3
    seed: int = 0


def load_any(path: Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at ``sr`` from WAV, FLAC or Ogg (through soundfile)."""
    try:
        import soundfile as sf
    except ImportError:
        raise ConfigError('reading FLAC/Ogg needs soundfile: pip install "edgekd[train]"') from None
    x, rate = sf.read(str(path), always_2d=True, dtype="float32")
    return resample(x.mean(axis=1), int(rate), sr).astype(np.float32)


def _split_of(name: str, seed: int, test_fraction: float) -> str:
    h = int(hashlib.sha1(f"{seed}:{name}".encode()).hexdigest(), 16) % 1000 / 1000.0
    return "test" if h < test_fraction else "train"


def _split_files(files: list[Path], seed: int, test_fraction: float) -> dict[str, list[Path]]:
    """Train/test by a stable hash of the file name; each side gets at least one recording."""
    split: dict[str, list[Path]] = {"train": [], "test": []}
    for p in files:
        split[_split_of(p.name, seed, test_fraction)].append(p)
    if not split["test"]:  # every class needs unseen recordings: move one
        split["test"].append(split["train"].pop())
    if not split["train"]:
        split["train"].append(split["test"].pop())
    return split


def source_recordings(roots: tuple[Path, ...] = ROOTS, seed: int = 0, test_fraction: float = 0.3) -> dict[str, dict[str, list[Path]]]:
    """``{class: {"train": [...], "test": [...]}}`` for the recorded classes, and ``"_background_"`` likewise."""
    files = sorted(p for r in roots if r.is_dir() for p in r.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".oga", ".ogg")
                   and p.stat().st_size > 2000)
    out: dict[str, dict[str, list[Path]]] = {}
    for cls, pat in {**SED_CLASSES, "_background_": BACKGROUND}.items():
        rx = re.compile(pat)
        mine = [p for p in files if rx.search(p.stem)]
        if mine:
            out[cls] = _split_files(mine, seed, test_fraction)
    return out


def esc50_sources(root: Path, test_folds: tuple[int, ...] = (5,)) -> dict[str, dict[str, list[Path]]]:
    """ESC-50 (``meta/esc50.csv`` + ``audio/``) as event sources; folds in ``test_folds`` are the unseen recordings
    (ESC-50 keeps clips cut from one recording in one fold)."""
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise ConfigError(f"{root}: no meta/esc50.csv; give the ESC-50 folder (github.com/karolpiczak/ESC-50 layout)")
    out: dict[str, dict[str, list[Path]]] = {}
    with meta.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            try:
                path, fold, cat = root / "audio" / row["filename"], int(row["fold"]), row["category"]
            except (KeyError, ValueError):
                raise ConfigError(f"{meta}:{n}: expected columns filename, fold (a number), category") from None
            if not path.is_file():
                raise ConfigError(f"{meta}:{n}: {path} is missing")
            out.setdefault(cat, {"train": [], "test": []})["test" if fold in test_folds else "train"].append(path)
    return out


def folder_sources(root: Path, seed: int = 0, test_fraction: float = 0.3) -> dict[str, dict[str, list[Path]]]:
    """A folder per class of isolated event recordings (``root/<class>/*.wav|flac|ogg``), split by file-name hash."""
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder of class folders")
    out: dict[str, dict[str, list[Path]]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg", ".oga"))
        if len(files) < 2:
            raise ConfigError(f"{d}: a class needs at least two recordings (one for training, one unseen for testing)")
        out[d.name] = _split_files(files, seed, test_fraction)
    if not out:
        raise ConfigError(f"{root}: no class folders with recordings")
    return out


def _trim(x: np.ndarray, max_s: float, rng: np.random.Generator) -> np.ndarray:
    keep = np.flatnonzero(np.abs(x) > 0.01 * (np.max(np.abs(x)) + 1e-9))
    if keep.size:
        x = x[keep[0] : keep[-1] + 1]
    n = int(max_s * SAMPLE_RATE)
    if x.shape[0] > n:
        s = int(rng.integers(0, x.shape[0] - n + 1))
        x = x[s : s + n]
        fade = min(160, n // 4)
        x[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return x


def _beep(rng: np.random.Generator) -> np.ndarray:
    """A synthetic alert: 1-4 tone bursts of 60-300 ms at 400-3000 Hz."""
    parts = []
    for _ in range(int(rng.integers(1, 5))):
        n = int(rng.uniform(0.06, 0.3) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        f = rng.uniform(400, 3000)
        env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
        parts += [(np.sin(2 * np.pi * f * t) * env).astype(np.float32), np.zeros(int(rng.uniform(0.03, 0.15) * SAMPLE_RATE), np.float32)]
    return np.concatenate(parts[:-1])


class _Speech:
    def __init__(self, split: str, seed: int) -> None:
        from edgekd.data.synth_kws import OTHER_WORDS
        from edgekd.data.voices.espeak import ACCENTS, Espeak, list_variants

        self.eng, self.accents, self.words = Espeak(), ACCENTS, OTHER_WORDS
        variants = list_variants()
        self.voices = [v for v in variants if (_split_of(v, seed, 0.3) == "test") == (split == "test")] or variants

    def say(self, rng: np.random.Generator) -> np.ndarray:
        text = " ".join(str(w) for w in rng.choice(self.words, size=int(rng.integers(1, 5))))
        pcm = self.eng.synth(text, str(rng.choice(self.accents)), str(rng.choice(self.voices)), rate_wpm=int(rng.integers(130, 220)))
        return resample(pcm.astype(np.float32) / 32768.0, self.eng.sample_rate, SAMPLE_RATE)


def _background(n: int, rng: np.random.Generator, recs: list[np.ndarray]) -> np.ndarray:
    kind = int(rng.integers(0, 4))
    if kind == 3:  # mains hum
        t = np.arange(n) / SAMPLE_RATE
        x = sum(np.sin(2 * np.pi * 50.0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 4)).astype(np.float32)
    else:
        x = colored_noise(n, float(kind), rng)
    x = x / (np.sqrt(np.mean(x**2)) + 1e-9)
    if recs and rng.random() < 0.5:
        r = recs[int(rng.integers(len(recs)))]
        r = np.tile(r, int(np.ceil(n / max(1, r.shape[0]))))[:n]
        x = x + 2.0 * r / (np.sqrt(np.mean(r**2)) + 1e-9)
    return (x * np.float32(10 ** (rng.uniform(-45, -25) / 20))).astype(np.float32)


def _event_audio(cls: str, rng: np.random.Generator, speech: _Speech, sources: dict[str, dict[str, list[Path]]], src_split: str,
                 rec: Callable[[Path], np.ndarray]) -> np.ndarray:
    """One event of class ``cls``: synthesized speech or a beep, else a random recording of the class."""
    if cls == "speech":
        return speech.say(rng)
    if cls == "beep":
        return _beep(rng)
    files = sources[cls][src_split]
    return rec(files[int(rng.integers(len(files)))])


def _soundscape(n: int, rng: np.random.Generator, bg_recs: list[np.ndarray], event: Callable[[str], np.ndarray], labels: list[str],
                cfg: SynthSedConfig) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """``n`` samples of background with 1..``cfg.max_events`` events mixed in at random times and SNRs (peak at most
    0.99); returns the audio and each event's (start, end, class) in samples."""
    bg = _background(n, rng, bg_recs)
    scape = bg.copy()
    bg_rms = float(np.sqrt(np.mean(bg**2))) + 1e-9
    events = []
    for _ in range(int(rng.integers(1, cfg.max_events + 1))):
        cls = labels[int(rng.integers(len(labels)))]
        x = _trim(event(cls), float(rng.uniform(1.0, 4.0)), rng)
        if x.shape[0] < int(0.05 * SAMPLE_RATE):
            continue
        start = int(rng.integers(0, max(1, n - x.shape[0])))
        x = x[: n - start]
        snr = rng.uniform(*cfg.snr_db)
        gain = bg_rms * 10 ** (snr / 20) / (np.sqrt(np.mean(x**2)) + 1e-9)
        scape[start : start + x.shape[0]] += (gain * x).astype(np.float32)
        events.append((start, start + x.shape[0], cls))
    peak = float(np.max(np.abs(scape)))
    if peak > 0.99:
        scape *= np.float32(0.99 / peak)
    return scape, events


def synth_sed(out_dir: str | Path, cfg: SynthSedConfig = SynthSedConfig(), progress: Callable[[int, int], None] | None = None,
              sources: dict[str, dict[str, list[Path]]] | None = None, synthesized: tuple[str, ...] = ("speech", "beep")) -> dict[str, object]:
    """Write ``audio/{train,validation,test}/*.wav`` and ``{split}.tsv`` under ``out_dir`` (new or empty), and with
    ``cfg.scapes_transfer`` an unlabelled ``audio/transfer/`` (no tsv: the teacher labels it). ``sources`` (e.g.
    ``esc50_sources``) replaces the Debian recordings; ``synthesized`` classes are added to them."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: folder is not empty; give a new folder (nothing was overwritten)")
    if sources is None:
        sources = source_recordings(seed=cfg.seed, test_fraction=cfg.test_fraction)
        missing = [c for c in SED_CLASSES if c not in sources and c not in synthesized]
        if len(missing) > len(SED_CLASSES) // 2:
            raise ConfigError("too few recorded sound classes found; install the Debian packages: "
                              "apt install sonic-pi-samples sound-theme-freedesktop sound-icons gnome-audio")
    labels = [c for c in sources if c != "_background_"] + [c for c in synthesized if c not in sources]
    cache: dict[Path, np.ndarray] = {}

    def rec(p: Path) -> np.ndarray:
        if p not in cache:
            cache[p] = load_any(p)
        return cache[p]

    plan = {"train": cfg.scapes_train, "validation": cfg.scapes_validation, "test": cfg.scapes_test, "transfer": cfg.scapes_transfer}
    total, done = sum(plan.values()), 0
    counts: dict[str, dict[str, int]] = {}
    for split, n_scapes in plan.items():
        src_split = "test" if split == "test" else "train"
        rng = np.random.default_rng([cfg.seed, list(plan).index(split)])
        speech = _Speech(src_split, cfg.seed)
        bg_recs = [rec(p) for p in sources.get("_background_", {}).get(src_split, [])]
        rows = []
        folder = out / "audio" / split
        folder.mkdir(parents=True, exist_ok=True)
        counts[split] = dict.fromkeys(labels, 0)
        n = int(cfg.seconds * SAMPLE_RATE)
        event = functools.partial(_event_audio, rng=rng, speech=speech, sources=sources, src_split=src_split, rec=rec)
        for i in range(n_scapes):
            scape, events = _soundscape(n, rng, bg_recs, event, labels, cfg)
            rows += [(f"scape_{i:05d}.wav", round(a / SAMPLE_RATE, 3), round(b / SAMPLE_RATE, 3), cls) for a, b, cls in events]
            for _, _, cls in events:
                counts[split][cls] += 1
            write_wav(folder / f"scape_{i:05d}.wav", scape, SAMPLE_RATE)
            done += 1
            if progress:
                progress(done, total)
        if split == "transfer":
            continue  # unlabelled by design
        with (out / f"{split}.tsv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter="\t")
            w.writerow(["filename", "onset", "offset", "event_label"])
            w.writerows(sorted(rows))
    meta = {"generator": "edgekd synth-sed", "config": asdict(cfg), "labels": labels, "counts": counts,
            "sources": {c: {s: [p.name for p in v] for s, v in d.items()} for c, d in sources.items()}}
    (out / "sed_meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta
