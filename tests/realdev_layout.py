"""A stand-in for ``../shared/realdev`` (tests never need the real one): the layout the real-voice benches read."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def fake_realdev(root: Path, label: str, positives: list[np.ndarray], negatives: np.ndarray) -> Path:
    """``root/realdev`` with two 1 s GSC clips and two 8 kHz FSDD clips cut from the first two seconds of ``negatives``
    (16 kHz), and ``positives`` as ``wakeword_dev/<label>/p<i>.wav`` with their tsv."""
    from edgekd.runtime.wav import write_wav

    real = root / "realdev"
    for i in range(2):
        write_wav(real / "gsc_v2_test_dev" / "left" / f"{i}.wav", negatives[i * 16000 : (i + 1) * 16000], 16000)
        write_wav(real / "fsdd" / f"{i}_x_{i}.wav", negatives[i * 16000 : (i + 1) * 16000 : 2], 8000)
    for i, x in enumerate(positives):
        write_wav(real / "wakeword_dev" / label / f"p{i}.wav", x, 16000)
    (real / "wakeword_dev" / f"{label}.tsv").write_text("filename\tonset\toffset\tevent_label\n"
                                                       + "".join(f"p{i}.wav\t0.0\t{x.shape[0] / 16000:.3f}\t{label}\n"
                                                                 for i, x in enumerate(positives)))
    return real
