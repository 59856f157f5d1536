"""Fuzz the input boundary: mutated WAVs and mutated bundles through the `edgekd` command, in this process.

    python -m bench.fuzz --examples 2000          (from the repository root; writes bench/results/fuzz.json)

Each case calls the console entry point (``edgekd.cli.main``) with `run BUNDLE --wav FILE` or `selftest BUNDLE` and
holds it to the rules of the hostile-input issue:

- it ends with exit 0, or with exit 2 and exactly one ``error:`` line on stderr; any other exception escaping the
  command is a traceback and fails the case;
- it ends within HANG_S seconds (a liveness guard against endless loops, not a speed target);
- it never exits 0 from a bundle whose files differ from what its manifest lists (a flipped byte in a model or
  golden file, a file removed, a listed path that leaves the bundle).

``tests/test_fuzz.py`` runs the same strategies with a few hundred examples in ``make test``; this command runs
many more and saves the tally of outcomes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import signal
import struct
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
BUNDLES = (REPO / "models" / "kws12-dscnn-kd-int8", REPO / "models" / "kws12-dscnn-stream-kd")
HANG_S = 60

__all__ = ["Outcome", "cli", "check_outcome", "valid_wav", "wav_mutations", "bundle_mutations", "apply_bundle_mutation", "BUNDLES"]


@dataclass(frozen=True)
class Outcome:
    rc: int
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("error:")]


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang(f"the command ran past {HANG_S} s")


def cli(*args: str | Path) -> Outcome:
    """Run ``edgekd ARGS`` in this process (stdout/stderr captured); exceptions other than SystemExit propagate."""
    out, err = io.StringIO(), io.StringIO()
    from edgekd.cli import main

    old_argv, old_handler = sys.argv, signal.signal(signal.SIGALRM, _alarm)
    sys.argv = ["edgekd", *map(str, args)]
    signal.alarm(HANG_S)
    rc = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        sys.argv = old_argv
    return Outcome(rc, out.getvalue(), err.getvalue())


def check_outcome(o: Outcome, what: str) -> None:
    """Exit 0, or exit 2 with exactly one ``error:`` line; no traceback text."""
    assert o.rc in (0, 2), f"{what}: exit {o.rc}\n{o.stderr[-2000:]}"
    assert "Traceback" not in o.stderr, f"{what}: traceback\n{o.stderr[-2000:]}"
    if o.rc == 2:
        assert len(o.errors) == 1, f"{what}: {len(o.errors)} error lines\n{o.stderr[-2000:]}"


# ---------------------------------------------------------------- WAVs


def valid_wav(seconds: float = 1.1) -> bytes:
    """A valid 16-bit mono 16 kHz WAV: the start of the shipped bundle's golden clip."""
    from edgekd.runtime.wav import read_wav

    audio = read_wav(BUNDLES[0] / "golden" / "clip.wav")
    pcm = (audio.samples[: int(seconds * 16000)] * 32767).clip(-32768, 32767).astype("<i2").tobytes()
    return b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + \
        b"data" + struct.pack("<I", len(pcm)) + pcm


# header fields of the canonical 44-byte header: (offset, struct format)
_FIELDS = {"riff_size": (4, "<I"), "fmt_size": (16, "<I"), "format_tag": (20, "<H"), "channels": (22, "<H"), "rate": (24, "<I"),
           "byte_rate": (28, "<I"), "block_align": (32, "<H"), "bits": (34, "<H"), "data_size": (40, "<I")}
_INTERESTING = (0, 1, 2, 3, 7, 8, 15, 16, 24, 32, 44, 64, 255, 256, 8000, 16000, 44100, 65535, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF)


@st.composite
def wav_mutations(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid WAV changed in one of the ways files break: flipped bytes, cut short, a header field set to an odd
    value, a chunk inserted, samples replaced by NaN-making float data, or nothing at all but garbage."""
    base = bytearray(valid_wav())
    kind = draw(st.sampled_from(("flip", "truncate", "field", "chunk", "garbage", "float_nan")))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.one_of(st.integers(0, 43), st.integers(0, len(base) - 1)))  # the header more often than not
            base[i] ^= draw(st.integers(1, 255))
        return kind, bytes(base)
    if kind == "truncate":
        return kind, bytes(base[: draw(st.integers(0, len(base) - 1))])
    if kind == "field":
        name = draw(st.sampled_from(sorted(_FIELDS)))
        off, fmt = _FIELDS[name]
        limit = 0xFFFF if fmt == "<H" else 0xFFFFFFFF
        value = draw(st.one_of(st.sampled_from([v for v in _INTERESTING if v <= limit]), st.integers(0, limit)))
        base[off : off + struct.calcsize(fmt)] = struct.pack(fmt, value)
        return f"field:{name}", bytes(base)
    if kind == "chunk":
        cid = draw(st.binary(min_size=4, max_size=4))
        body = draw(st.binary(max_size=64))
        size = draw(st.one_of(st.just(len(body)), st.integers(0, 0xFFFFFFFF)))
        at = draw(st.sampled_from((12, 36)))  # before fmt, or between fmt and data
        return "chunk", bytes(base[:at] + cid + struct.pack("<I", size) + body + base[at:])
    if kind == "float_nan":  # IEEE float samples holding NaN/Inf
        n = 16000
        body = struct.pack("<f", float("nan")) * 8 + struct.pack("<f", 0.0) * (n - 16) + struct.pack("<f", float("inf")) * 8
        head = b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, 16000, 64000, 4, 32)
        return kind, head + b"data" + struct.pack("<I", len(body)) + body
    return kind, draw(st.binary(max_size=200))


# ---------------------------------------------------------------- bundles

_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True, allow_infinity=True),
                          st.text(max_size=12), st.sampled_from(("..", "/etc/passwd", "../model.onnx", "model.onnx", "hann", "high", "")))
_JSON = st.recursive(_JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=8)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@st.composite
def bundle_mutations(draw: st.DrawFn) -> dict[str, Any]:
    """One change to a copy of a shipped bundle: a manifest value replaced or removed, the manifest replaced by
    another JSON value or by broken text, a listed file's bytes flipped or the file removed, or a listed path that
    leaves the bundle. ``tampered`` says whether the files no longer match the listing (exit 0 is then a lie)."""
    bundle = draw(st.sampled_from(BUNDLES))
    manifest = json.loads((bundle / "manifest.json").read_text())
    kind = draw(st.sampled_from(("set", "delete", "manifest", "text", "flip", "remove", "escape", "sha")))
    m: dict[str, Any] = {"bundle": bundle, "kind": kind, "tampered": False}
    listed = sorted(manifest["files"])
    if kind in ("set", "delete"):
        paths = [p for p in _paths(manifest) if p]
        path = draw(st.sampled_from(paths))
        m["path"] = path
        m["value"] = draw(_JSON) if kind == "set" else None
        # a changed or removed sha256 of a listed file leaves the file unvouched for
        m["tampered"] = len(path) >= 2 and path[0] == "files"
    elif kind == "manifest":
        m["value"] = draw(st.one_of(_JSON_SCALARS, st.lists(_JSON_SCALARS, max_size=3)))
    elif kind == "text":
        raw = (bundle / "manifest.json").read_bytes()
        m["bytes"] = raw[: draw(st.integers(0, len(raw) - 1))]
    elif kind in ("flip", "remove"):
        m["file"] = draw(st.sampled_from(listed))
        m["offset"] = draw(st.integers(0, 10**9))
        m["tampered"] = True
    elif kind == "escape":
        m["file"] = draw(st.sampled_from(("../outside.bin", "/etc/hostname", "golden/../../outside.bin", "link_out")))
        m["tampered"] = True
    else:  # "sha": a listed file's sha256 replaced by another string
        m["file"] = draw(st.sampled_from(listed))
        m["value"] = draw(st.one_of(st.text(max_size=70), st.just("0" * 64), st.integers(0, 2**64)))
        m["tampered"] = True
    return m


def apply_bundle_mutation(m: dict[str, Any], work: Path) -> Path:
    """Copy the bundle into ``work`` (fresh) and apply the mutation; returns the copy."""
    dst = work / "bundle"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(m["bundle"], dst)
    mf = dst / "manifest.json"
    manifest = json.loads(mf.read_text())
    kind = m["kind"]
    if kind in ("set", "delete"):
        *parents, last = m["path"]
        node = manifest
        for p in parents:
            node = node[p]
        if kind == "set":
            node[last] = m["value"]
        else:
            del node[last]
        mf.write_text(json.dumps(manifest))
    elif kind == "manifest":
        mf.write_text(json.dumps(m["value"]))
    elif kind == "text":
        mf.write_bytes(m["bytes"])
    elif kind == "flip":
        f = dst / m["file"]
        data = bytearray(f.read_bytes())
        if data:
            data[m["offset"] % len(data)] ^= 0xFF
        else:
            data = bytearray(b"x")
        f.write_bytes(bytes(data))
    elif kind == "remove":
        (dst / m["file"]).unlink()
    elif kind == "escape":
        outside = work / "outside.bin"
        outside.write_bytes(b"outside the bundle")
        if m["file"] == "link_out":
            (dst / "link_out").symlink_to(outside)
        import hashlib

        target = outside if not m["file"].startswith("/") else Path(m["file"])
        sha = hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else "0" * 64
        manifest["files"][m["file"]] = sha
        mf.write_text(json.dumps(manifest))
    else:
        manifest["files"][m["file"]] = m["value"]
        mf.write_text(json.dumps(manifest))
    return dst


def check_bundle_case(m: dict[str, Any], work: Path) -> dict[str, int]:
    """`selftest` and `run --wav` (the golden clip, kept outside the bundle) on the mutated bundle; returns the exit codes."""
    wav = work.parent / f"{work.name}-clip.wav"
    shutil.copyfile(m["bundle"] / "golden" / "clip.wav", wav)
    dst = apply_bundle_mutation(m, work)
    what = f"{m['bundle'].name} {m['kind']} {m.get('path', m.get('file', ''))}"
    rcs = {}
    for name, args in (("selftest", ("selftest", dst, "--backend", "onnx")), ("run", ("run", dst, "--wav", wav, "--backend", "onnx"))):
        o = cli(*args)
        check_outcome(o, f"{name} on {what}")
        rcs[name] = o.rc
    if m["tampered"]:
        assert rcs["selftest"] != 0, f"selftest passed a bundle whose files do not match its listing ({what})"
    if m["tampered"] and m["kind"] in ("flip", "remove") and m["file"] in _opened_by_run(m["bundle"]):
        assert rcs["run"] != 0, f"run used a file that does not match its listing ({what})"
    return rcs


def _opened_by_run(bundle: Path) -> set[str]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    names = {manifest["model_file"]}
    streaming = manifest.get("streaming") or {}
    names.update(streaming[k] for k in ("model_file", "init") if isinstance(streaming.get(k), str))  # run picks the streaming graph
    return names


def check_wav_case(kind: str, data: bytes, work: Path) -> int:
    work.mkdir(parents=True, exist_ok=True)
    wav = work / "case.wav"
    wav.write_bytes(data)
    o = cli("run", BUNDLES[0], "--wav", wav, "--backend", "onnx")
    check_outcome(o, f"run --wav ({kind})")
    return o.rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=2000, help="examples per target (WAV, bundle)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "fuzz.json")
    args = ap.parse_args()
    from hypothesis import HealthCheck, given, seed, settings

    from edgekd.bench.machine import provenance
    from edgekd.core.fsutil import write_json

    tally: dict[str, Counter[str]] = {"wav": Counter(), "bundle": Counter()}
    opts = settings(max_examples=args.examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    with tempfile.TemporaryDirectory(prefix="edgekd-fuzz-") as d:
        root = Path(d)

        @seed(args.seed)
        @opts
        @given(wav_mutations())
        def wavs(case: tuple[str, bytes]) -> None:
            tally["wav"][f"{case[0].split(':')[0]} -> exit {check_wav_case(case[0], case[1], root / 'wav')}"] += 1

        @seed(args.seed)
        @opts
        @given(bundle_mutations())
        def bundles(m: dict[str, Any]) -> None:
            rcs = check_bundle_case(m, root / "b")
            tally["bundle"][f"{m['kind']} -> selftest {rcs['selftest']}, run {rcs['run']}"] += 1

        wavs()
        bundles()
    result = {"examples_per_target": args.examples, "seed": args.seed, "failures": 0,
              "outcomes": {k: dict(sorted(v.items())) for k, v in tally.items()},
              "provenance": provenance("exit codes of `edgekd run`/`selftest` on mutated WAVs and bundles (all cases met the rules)")}
    write_json(args.json, result)
    print(json.dumps(result["outcomes"], indent=1))
    print(f"{sum(sum(v.values()) for v in tally.values())} cases, every one within the rules -> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
