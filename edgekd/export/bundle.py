"""Writing bundles atomically: build in a temporary sibling folder, then swap it into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekd.core.fsutil import atomic_write_text
from edgekd.runtime.manifest import MANIFEST_NAME, ModelManifest, sha256_file

__all__ = ["staging_dir", "finalize_manifest", "update_manifest", "apply_postprocess", "refresh_golden_detections", "write_golden_detections"]


@contextmanager
def staging_dir(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temp folder beside ``out``; on success it replaces ``out``; on error it is removed."""
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; a bundle is meant to be shared
    try:
        yield tmp
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def finalize_manifest(bundle: Path, manifest: ModelManifest) -> ModelManifest:
    """Hash every file in the bundle (except the manifest) into ``files`` and write manifest.json."""
    files = {
        str(p.relative_to(bundle)): sha256_file(p)
        for p in sorted(bundle.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }
    m = manifest.replace(files=files)
    atomic_write_text(bundle / MANIFEST_NAME, m.to_json())
    return m


def update_manifest(bundle: str | os.PathLike[str], **changes: Any) -> ModelManifest:
    """Rewrite manifest.json with some fields changed (e.g. ``metrics``); the model files are untouched."""
    m = ModelManifest.load(bundle).replace(**changes)
    atomic_write_text(Path(bundle) / MANIFEST_NAME, m.to_json())
    return m




def write_golden_detections(bundle_dir: Path, manifest: ModelManifest, backend: Any, rel: str, *, step_backend: Any = None) -> str:
    """Run the runtime over the bundle's golden WAV with ``backend`` (streaming through ``step_backend`` when given, as
    the runtime does with a streaming-state graph) and write what it detects to ``rel``."""
    import json

    from edgekd.runtime.kws_post import KwsPostprocessConfig
    from edgekd.runtime.kws_stream import KwsDetector
    from edgekd.runtime.wav import load_audio

    audio = load_audio(bundle_dir / manifest.golden_block.wav, manifest.sample_rate)  # exactly what a reader will see
    det = KwsDetector(manifest, backend, KwsPostprocessConfig.from_dict(manifest.postprocess), bundle_dir=bundle_dir,
                      step_backend=step_backend)
    found = [d.to_dict() for d in det.create_stream().accept_waveform(audio)]
    (bundle_dir / rel).write_text(json.dumps(found, indent=1) + "\n", encoding="utf-8")
    return rel


def apply_postprocess(bundle: str | os.PathLike[str], postprocess: dict[str, Any], **extra_provenance: Any) -> ModelManifest:
    """Store new post-processing in a bundle and regenerate its golden detections (ONNX and TFLite), atomically."""
    from edgekd.runtime.kws_post import KwsPostprocessConfig

    root = Path(bundle)
    m = ModelManifest.load(root)
    m.verify_files(root)
    pp = KwsPostprocessConfig.from_dict({**m.postprocess, **postprocess})
    m = m.replace(postprocess=pp.to_dict(), provenance=dict(m.provenance, **extra_provenance))
    with staging_dir(root) as tmp:
        shutil.copytree(root, tmp, dirs_exist_ok=True)
        refresh_golden_detections(tmp, m)
        m = finalize_manifest(tmp, m)
    return m


def refresh_golden_detections(bundle_dir: Path, m: ModelManifest) -> None:
    """Rewrite the golden detections of every backend the bundle has (ONNX, and TFLite when it has one) from ``m``."""
    from edgekd.runtime.backends import create_backend
    from edgekd.runtime.detector import streaming_backend

    g = m.golden_block
    if g.wav:
        for backend in ("onnx", "litert") if m.tflite_file else ("onnx",):
            write_golden_detections(bundle_dir, m, create_backend(backend, bundle_dir, m), g.check(backend).expected,
                                    step_backend=streaming_backend(backend, bundle_dir, m))
