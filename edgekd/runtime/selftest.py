"""``selftest``: prove a bundle gives its golden answers on this machine (runtime only; runs on the board)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import EdgeKDError
from edgekd.runtime.backends import resolve_backend
from edgekd.runtime.manifest import GoldenCheck, ModelManifest, sha256_file
from edgekd.runtime.wav import load_audio

__all__ = ["Check", "selftest"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def selftest(bundle: str | Path, *, backend: str = "auto", threads: int = 1) -> list[Check]:
    """Every check, in order: file hashes, model load, golden output, golden stream. Stops at the first
    check that makes the rest meaningless (a bad hash or a model that does not load)."""
    from edgekd.runtime.detector import load_model

    root = Path(bundle)
    checks: list[Check] = []
    try:
        m = ModelManifest.load(root)
        m.check_listing(root)  # the same rules as `run`: every opened file listed, every path inside the bundle
    except EdgeKDError as e:
        return [Check("manifest", False, str(e))]
    for rel, want in sorted(m.files.items()):
        p = root / rel
        if not p.is_file():
            checks.append(Check(f"sha256 {rel}", False, f"{p} is missing"))
            continue
        got = sha256_file(p)
        bad = f"{p} was changed or corrupted (sha256 {got[:12]}..., manifest {want[:12]}...)"
        checks.append(Check(f"sha256 {rel}", got == want, "ok" if got == want else bad))
    if not all(c.ok for c in checks):
        return checks
    try:
        chosen = resolve_backend(backend, m)
        det = load_model(root, backend=chosen, threads=threads, verify=False)
    except EdgeKDError as e:
        return [*checks, Check("load", False, str(e))]
    checks.append(Check("load", True, f"{det.backend.name} {det.backend.version}, {m.quantization}"))
    g = m.golden_block.check(chosen)
    checks.append(_guarded("golden output", lambda: _golden_output(det, root, g)))
    stream = _golden_stream(det, root, g, m.task, m.sample_rate)
    if stream is not None:
        checks.append(_guarded("golden stream", stream))
    return checks


def _guarded(name: str, run: Callable[[], Check]) -> Check:
    """A golden check whose files cannot be read or used (a damaged .npy or .json, a tensor of the wrong shape)
    fails with one line instead of raising."""
    try:
        return run()
    except Exception as e:  # noqa: BLE001 - any failure to evaluate golden data is a failed check
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return Check(name, False, f"golden data unusable ({type(e).__name__}: {first[:200]})")


def _golden_output(det: Any, root: Path, g: GoldenCheck) -> Check:
    if not (g.input and g.output):
        return Check("golden output", False, "the manifest names no golden input/output for this backend")
    x = np.load(root / g.input, allow_pickle=False)
    want = np.load(root / g.output, allow_pickle=False)
    got = det.logits(x)
    if got.shape != want.shape:
        return Check("golden output", False, f"output shape {list(got.shape)}, golden {list(want.shape)}")
    err = float(np.max(np.abs(got - want)))
    ok = bool(np.allclose(got, want, atol=g.atol, rtol=g.rtol))
    return Check("golden output", ok, f"max abs diff {err:.3g} (tolerance {g.atol:.3g})")


def _golden_stream(det: Any, root: Path, g: GoldenCheck, task: str, sample_rate: int) -> Callable[[], Check] | None:
    """The golden WAV streamed through the runtime against its stored events/detections (None: the bundle has none)."""
    if not (g.wav and g.expected):
        return None

    def sed() -> Check:
        audio = load_audio(root / g.wav, sample_rate)
        want = [(e["label"], e["onset_ms"], e["offset_ms"]) for e in json.loads((root / g.expected).read_text(encoding="utf-8"))]
        stream = det.create_stream()
        lines = stream.accept_waveform(audio) + stream.finish()
        got = sorted((e.label, e.onset_ms, e.offset_ms) for e in lines if e.offset_ms is not None)
        return Check("golden stream", got == sorted(want), f"{len(got)} event(s), expected {len(want)}")

    def kws() -> Check:
        audio = load_audio(root / g.wav, sample_rate)
        want = [(d["label"], int(d["t_ms"])) for d in json.loads((root / g.expected).read_text(encoding="utf-8"))]
        stream = det.create_stream()
        got = [(d.label, d.t_ms) for d in stream.accept_waveform(audio)]
        return Check("golden stream", got == want, f"{len(got)} detection(s), expected {len(want)}"
                     + ("" if got == want else f": got {got}, expected {want}"))

    return sed if task == "sed" else kws
