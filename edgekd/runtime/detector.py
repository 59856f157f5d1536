"""Opening a bundle: ``load_model`` (KWS or SED, by the manifest's task) and the ``Detector`` protocol both kinds meet."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgekd.core.errors import BundleError, ConfigError
from edgekd.runtime.backends import Backend, create_backend
from edgekd.runtime.frontend import FrontendParams
from edgekd.runtime.kws_post import KwsPostprocessConfig
from edgekd.runtime.kws_stream import KwsDetector
from edgekd.runtime.manifest import ModelManifest
from edgekd.runtime.sed_stream import SedDetector

__all__ = ["Detector", "DetectorStream", "load_model", "load_kws", "streaming_backend", "MODES"]

MODES = ("auto", "stream", "whole")


class DetectorStream(Protocol):
    """Per-session state of either kind: audio in, the detections (KWS) or event lines (SED) it completes out."""

    inferences: int
    inference_ms: list[float] | None

    def reset(self) -> None: ...

    @property
    def audio_seconds(self) -> float: ...

    def accept_waveform(self, samples: np.ndarray) -> list[Any]: ...

    def finish(self) -> list[Any]: ...


class Detector(Protocol):
    """What ``load_model`` returns, KWS (``KwsDetector``) or SED (``SedDetector``): a loaded model with its frontend and
    post-processing, safe to share between streams."""

    manifest: ModelManifest
    frontend_params: FrontendParams
    bundle_dir: Path

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def mode(self) -> str: ...

    @property
    def window_samples(self) -> int: ...

    @property
    def macs_per_inference(self) -> int: ...

    def logits(self, features: np.ndarray) -> np.ndarray: ...

    def predict_clip(self, audio: np.ndarray) -> np.ndarray: ...

    def create_stream(self) -> DetectorStream: ...


def load_model(
    bundle: str | os.PathLike[str],
    *,
    backend: str = "auto",
    threads: int = 1,
    postprocess: dict[str, Any] | None = None,
    verify: bool = True,
    mode: str = "auto",
    verifier: bool = True,
) -> KwsDetector | SedDetector:
    """Open a bundle folder: check its files against the manifest, load the model, return a ``KwsDetector`` or a
    ``SedDetector`` (the manifest's task says which).

    ``postprocess`` overrides keys of the manifest's post-processing block (e.g. ``{"threshold": 0.8}``).
    ``verifier=False`` leaves a bundle's second stage unloaded: its gate alone decides, at the thresholds.
    """
    root = Path(bundle)
    if not root.is_dir():
        raise BundleError(f"{root}: not a folder; give the path of a bundle (a folder with manifest.json)")
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    manifest = ModelManifest.load(root)
    try:
        FrontendParams.from_dict(manifest.frontend)
    except (ValueError, TypeError) as e:
        raise BundleError(f"{root}: manifest {e}; re-export the bundle") from None
    if verify:
        manifest.verify_files(root)
    else:
        manifest.check_listing(root)
    model = create_backend(backend, root, manifest, threads=threads)
    _check_label_count(root, manifest, model)
    if manifest.task == "sed":
        return SedDetector(manifest, model, postprocess, bundle_dir=root)
    pp = KwsPostprocessConfig.from_dict({**manifest.postprocess, **(postprocess or {})})
    step = streaming_backend(model.name, root, manifest, threads=threads) if mode != "whole" else None
    if step is None and mode == "stream":
        raise ConfigError(f"{root}: no streaming-state model for this backend; use --mode whole (or auto)")
    return KwsDetector(manifest, model, pp, bundle_dir=root, step_backend=step, use_verifier=verifier, verifier_threads=threads)


def streaming_backend(backend: str, root: Path, manifest: ModelManifest, *, threads: int = 1) -> Any:
    """The streaming-state graph of a KWS bundle for ``backend`` ("onnx" or "litert"), loaded; None when it has none."""
    st = manifest.kws_streaming
    if st is None:
        return None
    if backend == "onnx":
        from edgekd.runtime.backends.onnx import OnnxBackend

        return OnnxBackend(root / st.model_file, threads=threads)
    if backend == "litert" and st.tflite_model_file:
        from edgekd.runtime.backends.litert import LiteRTBackend

        return LiteRTBackend(root / st.tflite_model_file, threads=threads)
    return None


def _check_label_count(root: Path, manifest: ModelManifest, model: Backend) -> None:
    """The model's first output has one score per label (a manifest with 5 labels on a 12-way model lies)."""
    spec = next((t for t in model.output_specs if t.name == manifest.outputs[0].name), None)
    if spec is None or not spec.shape:
        return
    n = spec.shape[-1]
    if n not in (-1, len(manifest.labels)):
        raise BundleError(f"{root}: the manifest has {len(manifest.labels)} labels but the model outputs {n} scores; re-export the bundle")




def load_kws(bundle: str | os.PathLike[str], **kwargs: Any) -> KwsDetector:
    """``load_model`` for callers that need a KWS bundle (evaluation, tuning, latency): a SED bundle is a clear error."""
    det = load_model(bundle, **kwargs)
    if not isinstance(det, KwsDetector):
        raise BundleError(f"{bundle}: a {det.manifest.task} bundle; this command needs a KWS bundle")
    return det
