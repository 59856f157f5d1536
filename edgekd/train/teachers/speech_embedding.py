"""The speech-embedding backbone: Google's speech embedding (Lin et al., ICASSP 2020) as openWakeWord 0.4.0 ships it.

Two ONNX files from the installed ``openwakeword`` wheel, run through onnxruntime, frozen:
``melspectrogram.onnx`` (32 mel bands every 10 ms) and ``embedding_model.onnx`` (one 96-dim vector per 76 mel
frames, taken every 8 frames = 80 ms). A KWS clip (the 16,000 samples of a 98-frame window) is centred in a
1.5 s window of zeros, which gives ``FRAMES`` = 9 embedding frames: the teacher head's input is ``(9, 96)``.

Licence, as the wheel states it (checked in ``openwakeword-0.4.0.dist-info/METADATA``): the embedding model "is
provided by Google as a TFHub module under an Apache-2.0 license" and was re-implemented by openWakeWord; the same
text says its included pre-trained models are CC BY-NC-SA 4.0 "due to the inclusion of datasets with unknown or
restrictive licensing", which concerns the wake-word heads trained on such data. ``LICENCE_NOTE`` carries this into
every checkpoint and model card that uses the backbone; nothing of the wheel is vendored.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from edgekd.runtime.embedding_backbone import BACKBONE_FILES, DIM, FRAMES, WINDOW_SAMPLES, EmbeddingBackbone
from edgekd.runtime.manifest import sha256_file

__all__ = ["SpeechEmbedding", "FRAMES", "DIM", "WINDOW_SAMPLES", "LICENCE_NOTE", "backbone_identity", "check_backbone"]

LICENCE_NOTE = ("speech-embedding backbone: openwakeword==0.4.0's melspectrogram.onnx + embedding_model.onnx, a re-implementation of "
                "Google's speech_embedding TFHub module (Apache-2.0 per the wheel's README; the wheel's CC BY-NC-SA 4.0 clause "
                "names its pre-trained models trained on restrictively licensed data, i.e. the wake-word heads, none of which "
                "edgekd uses). Run from the installed wheel, never vendored.")


def backbone_identity(models_dir: Path | None = None) -> dict[str, Any]:
    """What a teacher built on the backbone records: each file's sha256, the source and the licence note."""
    from edgekd.train.teachers.oww import oww_models_dir

    d = models_dir or oww_models_dir()
    return {"name": "speech-embedding", "source": "openwakeword==0.4.0", "files": dict(_file_hashes(str(d))),
            "window_samples": WINDOW_SAMPLES, "frames": FRAMES, "dim": DIM, "licence": LICENCE_NOTE}


@functools.lru_cache(maxsize=4)
def _file_hashes(folder: str) -> tuple[tuple[str, str], ...]:
    """The backbone files' sha256 in ``folder``, once per process (every teacher check asks again)."""
    return tuple((f, sha256_file(Path(folder) / f)) for f in BACKBONE_FILES)


def check_backbone(recorded: dict[str, Any] | None, where: str) -> None:
    """Refuse (one line) a teacher whose recorded backbone files are not the installed ones: its head was trained on
    other embeddings, so its scores would be silently wrong."""
    from edgekd.core.errors import ConfigError

    here = backbone_identity()["files"]
    had = (recorded or {}).get("files") or {}
    changed = [f for f in BACKBONE_FILES if had.get(f) != here[f]]
    if changed:
        f = changed[0]
        raise ConfigError(f"{where}: trained on another speech-embedding backbone ({f}: sha256 {str(had.get(f))[:12]}... recorded, "
                          f"{here[f][:12]}... installed); train the teacher again (`edgekd train teacher --backbone speech-embedding`)")


class SpeechEmbedding(EmbeddingBackbone):
    """The backbone (``edgekd.runtime.embedding_backbone.EmbeddingBackbone``) from the installed openwakeword wheel's
    files, or from ``models_dir``."""

    def __init__(self, models_dir: Path | None = None, threads: int = 1) -> None:
        from edgekd.train.teachers.oww import oww_models_dir

        super().__init__(models_dir or oww_models_dir(), threads=threads)
