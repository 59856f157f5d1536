"""SED bundles at run time: ``SedDetector`` (whole clips) and ``SedRuntimeStream`` (audio in, event lines out).

A SED bundle's model maps ``(1, T, n_mels)`` log-mel frames to ``(1, T // pool, n_labels)`` frame logits and is
causal with a receptive field of ``context`` output frames (manifest ``streaming`` block). The stream runs the
model every ``stride`` output frames on just the input frames those outputs can see, aligned to ``pool``, and
keeps the last ``stride`` outputs: the same frame scores as the whole clip (the model's own zero padding at the
start of the stream is the same too), hence the same events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import BundleError
from edgekd.runtime.backends import Backend
from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
from edgekd.runtime.manifest import ModelManifest
from edgekd.runtime.sed_post import SedEvent, SedPostprocessConfig, SedStream, sigmoid

__all__ = ["SedDetector", "SedRuntimeStream"]


class SedDetector:
    """A loaded SED model with its frontend and post-processing. Safe to share between streams."""

    def __init__(self, manifest: ModelManifest, backend: Backend, postprocess: dict[str, Any] | None, *, bundle_dir: Path) -> None:
        try:
            st = manifest.sed_streaming
        except BundleError as e:
            raise BundleError(f"{bundle_dir}: {e}") from None
        self.pool, self.context, self.stride = st.time_pool, st.context_frames, st.stride_frames
        self.manifest = manifest
        self.backend = backend
        self.bundle_dir = bundle_dir
        self.frontend_params = FrontendParams.from_dict(manifest.frontend)
        self.hop_ms = 1000.0 * self.pool * self.frontend_params.hop_samples / self.frontend_params.sample_rate
        self.postprocess = SedPostprocessConfig.from_dict({**manifest.postprocess, **(postprocess or {})})
        self._in = manifest.inputs[0].name
        self._out = manifest.outputs[0].name

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def mode(self) -> str:
        return "stream"

    @property
    def stride_ms(self) -> float:
        """Audio between two model calls."""
        return self.stride * self.hop_ms

    @property
    def macs_per_inference(self) -> int:
        """Graph MACs of one model call (one window of context)."""
        prov = self.manifest.provenance
        return int(prov.get("graph_macs_per_inference") or prov.get("macs_per_inference") or 0)

    @property
    def window_samples(self) -> int:
        """Audio one model call reads (its receptive field plus one stride)."""
        p = self.frontend_params
        return ((self.context + self.stride) * self.pool - 1) * p.hop_samples + p.window_samples

    def frame_logits(self, features: np.ndarray) -> np.ndarray:
        """``(T, n_mels)`` -> ``(T // pool, n_labels)``."""
        if features.shape[0] < self.pool:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.backend.run({self._in: np.ascontiguousarray(features[None], dtype=np.float32)})[self._out][0]

    def logits(self, features: np.ndarray) -> np.ndarray:
        """``(1, T, n_mels)`` -> ``(1, T // pool, n_labels)`` (the golden-output check)."""
        return self.frame_logits(features[0])[None]

    def predict_clip(self, audio: np.ndarray) -> np.ndarray:
        """Frame probabilities of a whole clip, ``(frames, n_labels)``."""
        return sigmoid(self.frame_logits(LogMelFrontend(self.frontend_params).features(audio)))

    def events(self, audio: np.ndarray, onsets: bool = False) -> list[SedEvent]:
        from edgekd.runtime.sed_post import sed_events

        return sed_events(self.predict_clip(audio), self.labels, self.hop_ms, self.postprocess, onsets=onsets)

    def create_stream(self) -> SedRuntimeStream:
        return SedRuntimeStream(self)


class SedRuntimeStream:
    """Per-session state. ``accept_waveform`` returns the lines it completes (``onset`` lines, closed events);
    ``finish`` closes what is still open at the end of the audio."""

    def __init__(self, detector: SedDetector) -> None:
        self.detector = detector
        self._frontend = LogMelFrontend(detector.frontend_params)
        # called after every inference with the new output frames' probabilities (n_new, n_labels): evaluation and
        # parity checks read them here, as ``KwsStream.on_inference`` gives a KWS model's logits
        self.on_inference: Callable[[np.ndarray], None] | None = None
        self.inference_ms: list[float] | None = None
        self.inferences = 0
        self.reset()

    def reset(self) -> None:
        self._frontend.reset()
        self._feats = np.zeros((0, self.detector.frontend_params.n_mels), dtype=np.float32)
        self._first = 0  # input frame index of self._feats[0]
        self._n_in = 0
        self._n_out = 0
        self._samples = 0
        self._post = SedStream(self.detector.labels, self.detector.hop_ms, self.detector.postprocess)

    @property
    def audio_seconds(self) -> float:
        return self._samples / float(self.detector.frontend_params.sample_rate)

    def _run(self, n_new: int) -> list[SedEvent]:
        d = self.detector
        start_out = max(0, self._n_out - d.context)
        lo, hi = start_out * d.pool, (self._n_out + n_new) * d.pool
        t0 = time.perf_counter()
        z = d.frame_logits(self._feats[lo - self._first : hi - self._first])[-n_new:]
        if self.inference_ms is not None:
            self.inference_ms.append((time.perf_counter() - t0) * 1000.0)
        self.inferences += 1
        p = sigmoid(z)
        if self.on_inference is not None:
            self.on_inference(p)
        self._n_out += n_new
        keep = max(0, self._n_out - d.context) * d.pool  # drop frames no future window will read
        if keep > self._first:
            self._feats = self._feats[keep - self._first :]
            self._first = keep
        return self._post.push(p)

    def accept_waveform(self, samples: np.ndarray) -> list[SedEvent]:
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples += x.shape[0]
        new = self._frontend.push(x)
        self._feats = np.concatenate([self._feats, new]) if new.shape[0] else self._feats
        self._n_in += new.shape[0]
        out: list[SedEvent] = []
        d = self.detector
        while self._n_in // d.pool - self._n_out >= d.stride:
            out += self._run(d.stride)
        return out

    def finish(self) -> list[SedEvent]:
        d = self.detector
        out: list[SedEvent] = []
        rest = self._n_in // d.pool - self._n_out
        if rest > 0:
            out += self._run(rest)
        return out + self._post.finish()
