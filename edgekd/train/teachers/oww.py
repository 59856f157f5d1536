"""Teachers given as ONNX models plus an adapter from raw audio to scores; built in: openWakeWord 0.4.0.

``OwwAdapter`` reproduces ``openwakeword.Model.predict`` for one wake-word head, chunk by chunk, with the
three ONNX models openWakeWord ships (melspectrogram -> speech embedding -> head) driven by onnxruntime:
the same buffers (76 mel frames initialised to ones, the embedding history primed with 10 s of silence),
the same 480 samples of context for each mel call, one embedding per 80 ms, the head on the last 16
embeddings, and the first 5 scores forced to 0. The models are found in the installed ``openwakeword``
package (optional extra ``edgekd[oww]``); nothing of it is vendored, and its heads are CC BY-NC-SA 4.0:
never ship a model distilled from them.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.eval.wakeword import AudioIn, as_array

__all__ = ["OwwAdapter", "OnnxTeacher", "oww_models_dir", "parse_teacher_spec", "CHUNK"]

CHUNK = 1280  # 80 ms at 16 kHz: one score per chunk
MEL_CONTEXT = 480  # 3 extra hops of audio before each chunk's samples
MEL_WINDOW, MEL_STEP, N_MELS = 76, 8, 32
N_FEATURES, EMB_DIM = 16, 96
ZERO_FIRST = 5


def oww_models_dir() -> Path:
    """The ``resources/models`` folder of the installed openwakeword package (not imported)."""
    spec = importlib.util.find_spec("openwakeword")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError('openWakeWord is not installed; install the optional extra: pip install "edgekd[oww]" (openwakeword==0.4.0)')
    d = Path(next(iter(spec.submodule_search_locations))) / "resources" / "models"
    if not (d / "melspectrogram.onnx").is_file():
        raise ConfigError(f"{d} has no melspectrogram.onnx; openwakeword 0.4.0 ships its models, later releases download them")
    return d


def parse_teacher_spec(spec: str) -> tuple[str, str]:
    """``oww:hey_jarvis`` -> ("oww", "hey_jarvis")."""
    kind, _, name = spec.partition(":")
    if kind != "oww" or not name:
        raise ConfigError(f"--teacher {spec!r}: give oww:NAME (an openWakeWord 0.4.0 head, e.g. oww:hey_jarvis)")
    return kind, name


class OwwAdapter:
    """openWakeWord's streaming pipeline for one head: ``predict(chunk)`` -> the score ``Model.predict`` gives."""

    def __init__(self, head: str, models_dir: Path | None = None, threads: int = 1) -> None:
        d = models_dir or oww_models_dir()
        head_path = Path(head) if head.endswith(".onnx") else d / f"{head}_v0.1.onnx"
        if not head_path.is_file():
            have = sorted(p.name.removesuffix("_v0.1.onnx") for p in d.glob("*_v0.1.onnx"))
            raise ConfigError(f"no openWakeWord head {head!r} in {d}; choose one of: {', '.join(have)}")
        self.name = head_path.name.removesuffix(".onnx")
        self.paths = [d / "melspectrogram.onnx", d / "embedding_model.onnx", head_path]
        from edgekd.runtime.backends.onnx import OnnxBackend

        self._mel, self._emb, self._head = (OnnxBackend(p, threads=threads) for p in self.paths)
        self._check()
        silence = self._embed_clip(np.zeros(160000, dtype=np.int16))
        self._primed = silence.astype(np.float32)
        self.reset()

    def _check(self) -> None:
        """The adapter's contract with the three models: refuse ONNX files whose tensors do not fit it."""
        head_in = list(self._head.input_specs[0].shape)
        head_out = list(self._head.output_specs[0].shape)
        emb_out = list(self._emb.output_specs[0].shape)
        if len(head_in) != 3 or head_in[1:] != [N_FEATURES, EMB_DIM] or (emb_out and emb_out[-1] != EMB_DIM) or head_out[-1] != 1:
            raise ConfigError(f"{self.paths[2].name}: its input {head_in} / output {head_out} do not match the openWakeWord adapter "
                              f"(head input [batch, {N_FEATURES}, {EMB_DIM}], one score out, embeddings of {EMB_DIM})")

    @staticmethod
    def _run(model, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
        """The single output of one of the three models for input ``x``."""
        return model.run({model.input_specs[0].name: x})[model.output_specs[0].name]

    @property
    def identity(self) -> str:
        """sha256 over the three model files: which teacher scored what."""
        h = hashlib.sha256()
        for p in self.paths:
            h.update(p.read_bytes())
        return h.hexdigest()

    def _melspec(self, pcm: np.ndarray) -> np.ndarray:
        out = self._run(self._mel, pcm.astype(np.float32)[None])
        return np.squeeze(out) / 10 + 2

    def _embed_clip(self, pcm: np.ndarray) -> np.ndarray:
        spec = self._melspec(pcm)
        windows = [spec[i : i + MEL_WINDOW] for i in range(0, spec.shape[0], MEL_STEP) if spec[i : i + MEL_WINDOW].shape[0] == MEL_WINDOW]
        batch = np.asarray(windows)[..., None].astype(np.float32)
        return self._run(self._emb, batch).squeeze()

    def reset(self) -> None:
        self._raw = np.zeros(0, dtype=np.int16)  # the last samples (enough for one chunk plus context)
        self._mels = np.ones((MEL_WINDOW, N_MELS))
        self._feats = self._primed.copy()
        self._n = 0

    def predict(self, chunk: np.ndarray) -> float:
        """One 1280-sample int16 chunk in, one score out (0 for the first five, as openWakeWord does)."""
        pcm = np.asarray(chunk)
        if pcm.dtype != np.int16 or pcm.shape != (CHUNK,):
            raise ConfigError(f"the openWakeWord adapter takes int16 chunks of {CHUNK} samples, got {pcm.dtype} {pcm.shape}")
        self._raw = np.concatenate([self._raw, pcm])[-(CHUNK + MEL_CONTEXT) :]
        self._mels = np.vstack((self._mels, self._melspec(self._raw)))[-970:]
        x = self._mels[-MEL_WINDOW:].astype(np.float32)[None, :, :, None]
        self._feats = np.vstack((self._feats, self._run(self._emb, x).squeeze()))[-120:]
        score = float(self._run(self._head, self._feats[-N_FEATURES:][None].astype(np.float32))[0][0])
        self._n += 1
        return 0.0 if self._n <= ZERO_FIRST else score

    def score_pcm(self, pcm: np.ndarray) -> np.ndarray:
        """Scores of a whole int16 clip, one per complete 80 ms chunk, from a fresh state."""
        self.reset()
        n = pcm.shape[0] // CHUNK
        return np.array([self.predict(pcm[i * CHUNK : (i + 1) * CHUNK]) for i in range(n)], dtype=np.float32)


class OnnxTeacher:
    """A teacher made of ONNX models plus an adapter; ``scores(audio)`` gives its per-hop targets for a clip."""

    def __init__(self, spec: str, threads: int = 1) -> None:
        kind, name = parse_teacher_spec(spec)
        self.spec = spec
        self.adapter = OwwAdapter(name, threads=threads)
        self.hop_ms = 1000 * CHUNK // 16000
        self.identity = self.adapter.identity

    def scores(self, audio: np.ndarray) -> np.ndarray:
        """``audio``: float32 in [-1, 1] at 16 kHz, or int16. One score per 80 ms."""
        x = np.asarray(audio)
        pcm = x if x.dtype == np.int16 else np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
        return self.adapter.score_pcm(pcm)

    def timeline(self, audio: AudioIn) -> tuple[np.ndarray, np.ndarray]:
        """``(t_ms, score)``: each score at the end of its 80 ms chunk (a ``Scorer`` of ``edgekd.eval.wakeword``, which
        may hand over a file's blocks one by one: they are joined first)."""
        s = self.scores(as_array(audio))
        return (np.arange(1, s.shape[0] + 1) * self.hop_ms).astype(np.float64), s.astype(np.float64)
