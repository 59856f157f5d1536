"""Event annotations: the DCASE tsv (``filename onset offset event_label``, seconds) every task reads."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekd.core.errors import DataError

__all__ = ["Annotation", "read_annotations"]


@dataclass(frozen=True)
class Annotation:
    filename: str
    onset_s: float
    offset_s: float
    label: str


def read_annotations(path: Path, labels: Sequence[str] | None = None) -> list[Annotation]:
    """DCASE-style tsv: a header ``filename onset offset event_label``, then one row per event (seconds)."""
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found; give a tsv with columns filename, onset, offset, event_label")
    out: list[Annotation] = []
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or [c.strip() for c in rows[0][:4]] != ["filename", "onset", "offset", "event_label"]:
        raise DataError(f"{path}:1: the header must be: filename<TAB>onset<TAB>offset<TAB>event_label")
    for n, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 4:
            raise DataError(f"{path}:{n}: expected 4 tab-separated columns, got {len(row)}")
        try:
            onset, offset = float(row[1]), float(row[2])
        except ValueError:
            raise DataError(f"{path}:{n}: onset and offset must be numbers of seconds, got {row[1]!r} and {row[2]!r}") from None
        if not (math.isfinite(onset) and math.isfinite(offset)) or onset < 0 or offset < onset:
            raise DataError(f"{path}:{n}: onset {onset} and offset {offset} must satisfy 0 <= onset <= offset")
        label = row[3].strip()
        if labels is not None and label not in labels:
            raise DataError(f"{path}:{n}: unknown label {label!r}; expected one of: {', '.join(labels)}")
        out.append(Annotation(row[0].strip(), onset, offset, label))
    return out
