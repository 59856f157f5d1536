"""Export a speech-embedding teacher as a verifier folder (``edgekd.runtime.verifier.Verifier``), host side.

The teacher's main head goes to ONNX (``head.onnx``, frames ``(N, 9, 96)`` -> logits); the backbone's two files are
copied from the installed openwakeword wheel after checking they are the files the teacher was trained on (their
sha256 in its checkpoint); ``verifier.json`` records labels, window, every file's sha256, the backbone's licence note
and the teacher's sha256. Written under a temporary name and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from edgekd.core.errors import ConfigError
from edgekd.runtime.manifest import sha256_file
from edgekd.runtime.verifier import HEAD_FILE, VERIFIER_FORMAT, VERIFIER_META

if TYPE_CHECKING:
    from edgekd.runtime.manifest import ModelManifest

__all__ = ["export_verifier", "attach_verifier", "VERIFIER_DIR"]

VERIFIER_DIR = "verifier"  # the verifier's folder inside a bundle


def export_verifier(teacher: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write the verifier folder ``out`` (which must not exist) for the speech-embedding teacher checkpoint ``teacher``."""
    from edgekd.core.units import CLIP_SAMPLES
    from edgekd.export.onnx import _torch_to_onnx
    from edgekd.runtime.embedding_backbone import BACKBONE_FILES
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.teachers.embedding_teacher import ARCH
    from edgekd.train.teachers.oww import oww_models_dir
    from edgekd.train.teachers.speech_embedding import DIM, FRAMES, LICENCE_NOTE, check_backbone

    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists; give a new folder for the verifier")
    ck = Checkpoint.load(teacher)
    if ck.arch != ARCH:
        raise ConfigError(f"{teacher}: a {ck.arch} checkpoint, not a speech-embedding teacher")
    check_backbone(ck.provenance.get("backbone"), str(teacher))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _torch_to_onnx(ck.build().eval(), FRAMES, DIM, tmp / HEAD_FILE)  # the students' exporter: (batch, 9, 96) -> logits
        src = oww_models_dir()
        for name in BACKBONE_FILES:
            shutil.copyfile(src / name, tmp / name)
        files = {name: sha256_file(tmp / name) for name in (*BACKBONE_FILES, HEAD_FILE)}
        meta = {"format": VERIFIER_FORMAT, "labels": list(ck.labels), "window_samples": CLIP_SAMPLES, "files": files,
                "teacher_sha256": sha256_file(teacher), "licence": LICENCE_NOTE}
        (tmp / VERIFIER_META).write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def attach_verifier(bundle: str | os.PathLike[str], teacher: str | os.PathLike[str], gates: dict[str, float], every: int = 1,
                    max_calls: int | None = None, hold: int = 0, peak_power: float = 0.0, lookback_ms: int = 0,
                    **extra_provenance: object) -> ModelManifest:
    """Give a KWS/wake-word bundle a second stage: ``teacher`` exported as its ``verifier/`` folder, ``gates`` (label ->
    smoothed posterior that opens the gate), ``every`` (verify the first and every ``every``-th inference of an
    opening), ``max_calls`` (at most that many per opening; None: no cap) and ``hold`` (inferences a gate stays open after
    the score falls under it) and ``peak_power`` (the verified score is the verifier's posterior times the opening's
    peak smoothed posterior to this power; 0: the verifier's alone) and ``lookback_ms`` (an opening's first call also
    scores the second that ended this long before it; 0: the last second alone) in the manifest's verifier block; the
    post-processing thresholds then apply to the verified score. Golden detections are rewritten and every file rehashed; atomically (a failure
    leaves the bundle as it was). A bundle that has a verifier gets the new one in its place."""
    from edgekd.export.bundle import finalize_manifest, refresh_golden_detections, staging_dir
    from edgekd.runtime.manifest import ModelManifest, VerifierBlock

    root = Path(bundle)
    m = ModelManifest.load(root)
    m.verify_files(root)
    if m.task == "sed":
        raise ConfigError(f"{root}: a sed bundle; a verifier is a second stage for keywords and wake words")
    block = VerifierBlock(dir=VERIFIER_DIR, gates={k: float(v) for k, v in gates.items()}, every=every, max_calls=max_calls, hold=hold,
                          peak_power=float(peak_power), lookback_ms=int(lookback_ms))
    m = m.replace(verifier=block.to_dict(),
                  provenance=dict(m.provenance, verifier={"teacher_sha256": sha256_file(teacher), **extra_provenance}))
    ModelManifest.from_dict(m.to_dict())  # the block is checked before any work
    with staging_dir(root) as tmp:
        shutil.copytree(root, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(VERIFIER_DIR))
        export_verifier(teacher, tmp / VERIFIER_DIR)
        refresh_golden_detections(tmp, m)
        m = finalize_manifest(tmp, m)
    return m
