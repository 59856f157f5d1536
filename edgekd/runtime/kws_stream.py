"""KWS at run time: ``KwsDetector`` (loaded once, shared, immutable) and ``KwsStream`` (all per-session state)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgekd.core.errors import AudioFormatError, BundleError, ConfigError
from edgekd.runtime.backends import Backend
from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
from edgekd.runtime.kws_post import Detection, KwsPostprocessConfig, KwsPostprocessor, softmax
from edgekd.runtime.manifest import ModelManifest

if TYPE_CHECKING:
    from edgekd.runtime.backends.litert import LiteRTBackend, LiteRTStateStepper
    from edgekd.runtime.backends.onnx import OnnxBackend, StateStepper
    from edgekd.runtime.verifier import Verifier

__all__ = ["KwsDetector", "KwsStream", "stride_frames"]


def stride_frames(stride_ms: int, sample_rate: int, hop_samples: int) -> int:
    """Frontend frames between two model calls at ``stride_ms`` (at least one)."""
    return max(1, round(stride_ms * sample_rate / (1000.0 * hop_samples)))


class KwsDetector:
    """A loaded model with its frontend and post-processing settings. Safe to share between streams."""

    def __init__(
        self, manifest: ModelManifest, backend: Backend, postprocess: KwsPostprocessConfig, *, bundle_dir: Path,
        step_backend: OnnxBackend | LiteRTBackend | None = None, use_verifier: bool = True, verifier_threads: int = 1,
    ) -> None:
        self.manifest = manifest
        self.step_backend = step_backend
        self.state_init: dict[str, np.ndarray] = {}
        self.any_hop = False  # a streaming graph that takes any number of new frames per call (the stride is free)
        self.hop_ms: int | None = None  # a streaming graph's default hop (its manifest hop_frames), in ms
        self.frontend_params = FrontendParams.from_dict(manifest.frontend)
        self.streaming = manifest.kws_streaming if step_backend is not None else None
        if step_backend is not None:
            st = self.streaming
            if st is None:
                raise BundleError(f"{bundle_dir}: a streaming-state model but no streaming block in the manifest; re-export the bundle")
            fp = self.frontend_params
            frames_spec = next((x for x in step_backend.input_specs if x.name == st.frames_input), None)
            # a graph exported with a free frame axis takes any whole number of frames per call; older ones one hop
            self.any_hop = frames_spec is not None and len(frames_spec.shape) == 3 and frames_spec.shape[1] == -1
            frame_ms = 1000 * fp.hop_samples // fp.sample_rate
            self.hop_ms = hop_ms = st.hop_frames * frame_ms
            if self.any_hop and postprocess.stride_ms % frame_ms:
                raise ConfigError(f"this bundle streams whole frames; the stride must be a multiple of {frame_ms} ms")
            if not self.any_hop and postprocess.stride_ms != hop_ms:
                raise ConfigError(f"this bundle streams one hop of {hop_ms} ms per inference; the stride must be {hop_ms} ms "
                                  "(or use --mode whole)")
            # the ONNX graph's states are described by the manifest; the LiteRT twin's (int8, NHWC) by its own graph
            lite = step_backend.name == "litert"
            model_file, init_file = (st.tflite_model_file, st.tflite_init) if lite else (st.model_file, st.init)
            with np.load(bundle_dir / init_file) as z:
                self.state_init = {k: z[k] for k in z.files}
            want = {st.frames_input, *(x.input for x in st.states)}
            if {t.name for t in step_backend.input_specs} != want:
                raise BundleError(f"{model_file}: inputs do not match the manifest's streaming block; re-export the bundle")
            graph = {t.name: t for t in step_backend.input_specs}
            for x in st.states:
                got = self.state_init.get(x.input)
                dtype, shape = (graph[x.input].dtype, graph[x.input].shape) if lite else (x.dtype, x.shape)
                if got is None or str(got.dtype) != dtype or graph[x.input].dtype != dtype or tuple(got.shape) != shape:
                    raise BundleError(f"{init_file}: state {x.input} does not match {model_file} ({dtype} {list(shape)}); "
                                      "re-export the bundle")
        self.backend = backend
        self.postprocess = postprocess
        self.bundle_dir = bundle_dir
        # the second stage (manifest's verifier block), loaded unless ``use_verifier`` is False (the gate alone)
        self.verifier_block = manifest.verifier_block if use_verifier else None
        self.verifier: Verifier | None = None
        if self.verifier_block is not None:
            from edgekd.runtime.verifier import Verifier

            self.verifier = Verifier(bundle_dir / self.verifier_block.dir, threads=verifier_threads)
            missing = [k for k in manifest.keyword_labels if k not in self.verifier.labels]
            if missing:
                raise BundleError(f"{bundle_dir}: the verifier has no label {missing[0]!r}; re-export the bundle")
        self._frontend = LogMelFrontend(self.frontend_params)
        self._check_tensors()
        self._in = manifest.inputs[0].name
        self._out = manifest.outputs[0].name

    def _check_tensors(self) -> None:
        m = self.manifest
        want_in = {t.name: t.shape for t in m.inputs}
        got_in = {t.name: t.shape for t in self.backend.input_specs}
        want_out = {t.name for t in m.outputs}
        got_out = {t.name for t in self.backend.output_specs}
        if set(want_in) != set(got_in) or not want_out <= got_out:
            raise BundleError(
                f"{m.model_file}: model tensors {sorted(got_in)} -> {sorted(got_out)} do not match the manifest "
                f"{sorted(want_in)} -> {sorted(want_out)}; re-export the bundle"
            )
        for name, shape in want_in.items():
            got = got_in[name]
            ok = len(got) == len(shape) and all(a == b or a == -1 or b == -1 for a, b in zip(got, shape, strict=False))
            if not ok:
                raise BundleError(
                    f"{m.model_file}: input {name} has shape {list(got)}, manifest says {list(shape)}; re-export the bundle"
                )
        n_mels = self.frontend_params.n_mels
        if tuple(want_in[m.inputs[0].name][1:]) != (m.window_frames, n_mels):
            raise BundleError(f"manifest input shape does not match window_frames={m.window_frames} x n_mels={n_mels}")

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def stride_ms(self) -> int:
        """Audio between two model calls."""
        return self.postprocess.stride_ms

    @property
    def mode(self) -> str:
        """``stream`` (new frames + state per hop) or ``whole`` (the whole window per inference)."""
        return "stream" if self.step_backend is not None else "whole"

    @property
    def stride_frames(self) -> int:
        """Frames between two model calls (a streaming graph's new frames per call)."""
        p = self.frontend_params
        return stride_frames(self.postprocess.stride_ms, p.sample_rate, p.hop_samples)

    @property
    def macs_per_inference(self) -> int:
        """Graph MACs of one model call as this detector runs it: a whole window, or one stride of new frames (a hop's
        MACs scale with its new frames: every time kernel is valid, so each new frame costs the same)."""
        m, st = self.manifest, self.streaming
        if self.mode == "stream" and st is not None:
            return st.graph_macs_per_hop * self.stride_frames // st.hop_frames
        return int(m.provenance.get("graph_macs_per_inference") or m.provenance.get("macs_per_inference") or 0)

    def state_stepper(self) -> StateStepper | LiteRTStateStepper | None:
        """A new stepper of the streaming-state graph (its own state, one stride of new frames per step), or None for
        a whole-window detector."""
        st = self.streaming
        if self.step_backend is None or st is None:
            return None
        return self.step_backend.state_stepper(
            st.frames_input, (1, self.stride_frames, self.frontend_params.n_mels),  # a fixed-hop graph's stride is its hop
            [(x.input, x.output) for x in st.states], st.logits_output, self.state_init)

    @property
    def window_samples(self) -> int:
        p = self.frontend_params
        return (self.manifest.window_frames - 1) * p.hop_samples + p.window_samples

    # ---- clip-level --------------------------------------------------------------------
    def clip_features(self, audio: np.ndarray) -> np.ndarray:
        """Features of a clip padded with zeros (or cut) to exactly one model window: ``(T, n_mels)``."""
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        p = self.frontend_params
        clip = p.sample_rate  # clips are 1 s, padded at the end (as in training) ...
        x = x[:clip] if x.shape[0] >= clip else np.pad(x, (0, clip - x.shape[0]))
        n = self.window_samples  # ... and a longer window gets silence before them (what a stream starts with)
        x = x[clip - n :] if n <= clip else np.pad(x, (n - clip, 0))
        return self._frontend.features(x)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Raw model outputs for a batch of feature windows ``(B, T, n_mels)`` -> ``(B, n_labels)``."""
        feats = np.ascontiguousarray(features, dtype=np.float32)
        if feats.ndim == 2:
            feats = feats[None]
        return self.backend.run({self._in: feats})[self._out]

    def predict_clip(self, audio: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n_labels,)`` for one clip (padded or cut to the model window)."""
        x = np.asarray(audio, dtype=np.float32)
        if x.size == 0:
            raise AudioFormatError("empty audio; give at least one sample")
        if not np.all(np.isfinite(x)):
            raise AudioFormatError("audio contains NaN or Inf samples")
        return softmax(self.logits(self.clip_features(x))[0].astype(np.float64)).astype(np.float32)

    # ---- streaming ---------------------------------------------------------------------
    def create_stream(self) -> KwsStream:
        return KwsStream(self)


class KwsStream:
    """Per-session state: frontend remainder, the last window of frames, smoothing and refractory state.

    Results depend only on the audio, never on how it is chunked.
    """

    def __init__(self, detector: KwsDetector) -> None:
        self.detector = detector
        p = detector.frontend_params
        self._frontend = LogMelFrontend(p)
        self._window = detector.manifest.window_frames
        self._stride_frames = detector.stride_frames
        self._hop_ms = 1000.0 * p.hop_samples / p.sample_rate
        self._win_ms = 1000.0 * p.window_samples / p.sample_rate
        vb, verifier = detector.verifier_block, detector.verifier
        self._post = KwsPostprocessor(detector.labels, detector.manifest.keyword_labels, detector.postprocess,
                                      gates=vb.gates if vb is not None else None, verifier_labels=verifier.labels if verifier else (),
                                      verify_every=vb.every if vb is not None else 1,
                                      verify_max_calls=vb.max_calls if vb is not None else None,
                                      verify_hold=vb.hold if vb is not None else 0,
                                      verify_peak_power=vb.peak_power if vb is not None else 0.0)
        self._verify = self.verify_now if verifier is not None else None
        # with a verifier: the last seconds of audio in a ring allocated once; every sample is written twice (at i and
        # i + n) so that any second of it is one contiguous slice. Chunks are fed in pieces of at most _piece samples,
        # so the ring holds the verifier's window + a piece + what the frontend may still owe the model (stride, window)
        self._piece = 4000
        lag = 2 * (detector.stride_frames * p.hop_samples + p.window_samples)
        self._lookback = int(round(vb.lookback_ms * p.sample_rate / 1000)) if vb is not None and verifier is not None else 0
        self._audio_n = (verifier.window_samples + self._lookback + self._piece + lag) if verifier is not None else 0
        self._audio = np.zeros(2 * self._audio_n, dtype=np.float32)
        self.inferences = 0
        self.inference_ms: list[float] | None = None  # set to [] to record each inference's wall time (bench)
        # called after every inference with (t_ms, logits): evaluation and parity checks read the raw model outputs
        # here; ``logits`` is the model's output buffer, overwritten by the next inference (copy what you keep)
        self.on_inference: Callable[[int, np.ndarray], None] | None = None
        self._stepper = detector.state_stepper()
        self.reset()

    def reset(self) -> None:
        p = self.detector.frontend_params
        self._frontend.reset()
        if self._stepper is not None:
            self._stepper.reset()
        self._pending = 0  # frames already in the stepper's input buffer
        # Every frame is written twice, at i and i + window, so the last `window` frames are always the
        # contiguous rows [i + 1, i + 1 + window): no copy per frame, no copy per inference.
        self._ring = np.full((2 * self._window, p.n_mels), p.floor_value, dtype=np.float32)
        self._head = self._window - 1
        self._n_frames = 0
        self._samples = 0
        self._audio[...] = 0.0
        self._t_samples = 0
        self._verified_at = (-1, False)
        self._verified = np.zeros(0)
        self._post.reset()

    @property
    def verifier_calls(self) -> int:
        """Times the post-processor asked the verifier (0 without one)."""
        return self._post.verifier_calls

    @property
    def audio_seconds(self) -> float:
        return self._samples / float(self.detector.frontend_params.sample_rate)

    def accept_waveform(self, samples: np.ndarray) -> list[Detection]:
        """Feed float32 samples in [-1, 1] (any length); return the detections they complete."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        # one sum is a cheap screen (NaN and Inf propagate); the exact check runs only when it trips
        if x.size and not np.isfinite(x.sum()) and not np.all(np.isfinite(x)):
            raise AudioFormatError("audio chunk contains NaN or Inf samples")
        if self._audio_n == 0:
            return self._accept(x)
        out: list[Detection] = []
        for i in range(0, x.shape[0], self._piece):
            piece = x[i : i + self._piece]
            self._remember(piece)
            out += self._accept(piece)
        return out

    def _remember(self, x: np.ndarray) -> None:
        """Write ``x`` (at most one piece) into the audio ring, at its absolute sample positions, twice."""
        n, a = self._audio_n, self._samples % self._audio_n
        m = min(x.shape[0], n - a)
        for base in (0, n):
            self._audio[base + a : base + a + m] = x[:m]
            self._audio[base : base + x.shape[0] - m] = x[m:]

    def verify_now(self, first: bool = False) -> np.ndarray:
        """The verifier's posteriors (its label order) of the second of audio that ends at the last inference: what the
        post-processor asks when a gate opens; evaluation asks it too (``edgekd.eval.wakeword.bundle_scorer``). With
        ``first`` (an opening's first call) and the bundle's ``lookback_ms``, per label the higher of that and the
        second that ended ``lookback_ms`` earlier."""
        verifier = self.detector.verifier
        if verifier is None:
            raise ConfigError("this detector has no verifier")
        w, n = verifier.window_samples, self._audio_n
        if self._samples - self._t_samples > n - w - self._lookback:  # cannot happen: the ring is sized for the frontend's lag
            raise RuntimeError("the audio ring no longer holds the verifier's window")
        key = (self._t_samples, bool(first and self._lookback))
        if self._verified_at != key:  # asked once per inference, however many callers ask
            start = (self._t_samples - w) % n  # before the stream's start: zeros, as the ring began
            self._verified = verifier.probs(self._audio[start : start + w])
            if key[1]:
                earlier = (self._t_samples - self._lookback - w) % n
                np.maximum(self._verified, verifier.probs(self._audio[earlier : earlier + w]), out=self._verified)
            self._verified_at = key
        return self._verified

    def _accept(self, x: np.ndarray) -> list[Detection]:
        self._samples += x.shape[0]
        # frames are computed only when the next model call has all it needs: one frontend batch per hop, not per chunk
        if self._stepper is not None:
            new = self._frontend.push_view(x, min_frames=self._stepper.frames.shape[1] - self._pending)
            return self._accept_frames_streaming(new)  # consumed before the next push overwrites it
        new = self._frontend.push_view(x, min_frames=self._stride_frames - self._n_frames % self._stride_frames)
        out: list[Detection] = []
        w = self._window
        for frame in new:
            i = (self._head + 1) % w
            self._ring[i] = frame
            self._ring[i + w] = frame
            self._head = i
            self._n_frames += 1
            if self._n_frames % self._stride_frames == 0:
                window = self._ring[i + 1 : i + 1 + w]
                t0 = time.perf_counter() if self.inference_ms is not None else 0.0
                logits = self.detector.logits(window)[0]
                self._emit(logits, t0, out)
        return out

    def finish(self) -> list[Detection]:
        """End of the audio: a keyword detection never waits for later audio, so nothing is left to report."""
        return []

    def _emit(self, logits: np.ndarray, t0: float, out: list[Detection]) -> None:
        """Book-keeping after one inference: timing, logits log, posteriors, post-processing."""
        if self.inference_ms is not None:
            self.inference_ms.append((time.perf_counter() - t0) * 1000.0)
        self.inferences += 1
        t_ms = int(round((self._n_frames - 1) * self._hop_ms + self._win_ms))
        p = self.detector.frontend_params
        self._t_samples = (self._n_frames - 1) * p.hop_samples + p.window_samples
        if self.on_inference is not None:
            self.on_inference(t_ms, logits)
        det = self._post.update_logits(logits, t_ms, self._verify)
        if det is not None:
            out.append(det)

    def _accept_frames_streaming(self, new: np.ndarray) -> list[Detection]:
        """Collect frames straight into the stepper's bound input buffer; one model call per full hop."""
        stepper = self._stepper
        assert stepper is not None
        buf = stepper.frames[0]
        hop = buf.shape[0]
        out: list[Detection] = []
        k, n = 0, new.shape[0]
        while k < n:
            m = min(hop - self._pending, n - k)
            buf[self._pending : self._pending + m] = new[k : k + m]
            self._pending += m
            k += m
            if self._pending == hop:
                self._pending = 0
                self._n_frames += hop
                t0 = time.perf_counter() if self.inference_ms is not None else 0.0
                self._emit(stepper.step(), t0, out)
        return out
