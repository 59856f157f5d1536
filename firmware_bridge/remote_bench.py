"""``edgekd bench --remote``: run ``edgekd bench`` on the board and bring its JSON home."""

from __future__ import annotations

import json
import re
import secrets
import shlex
from pathlib import Path
from typing import Any

from edgekd.runtime.manifest import ModelManifest
from firmware_bridge.deploy import bundle_items, edgekd_cmd, require_runtime, upload
from firmware_bridge.errors import BoardError
from firmware_bridge.ssh import SshTarget, last_line, rpath

__all__ = ["bench_remote", "host_slug"]

REQUIRED_KEYS = ("cpu_ms_per_audio_s", "latency_ms", "machine", "bundle")


def host_slug(destination: str) -> str:
    """A folder name for a board's results: the host part, with anything unusual replaced."""
    host = destination.rsplit("@", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", host).strip("._") or "board"


def bench_remote(target: SshTarget, bundle: str, wav: Path, remote_dir: str = "~/edgekd", *, backend: str = "auto", mode: str = "auto",
                 threads: int = 1, repeats: int = 5) -> dict[str, Any]:
    """Bench ``bundle`` on the board: ``current`` (what is deployed) or a local bundle folder (uploaded to staging,
    verified by the board's bench, removed afterwards). Returns the board's result dict with ``board`` added."""
    if not wav.is_file():
        raise BoardError(f"--wav {wav} does not exist")
    require_runtime(target, remote_dir, "bench")
    staging = f"{remote_dir.rstrip('/')}/staging/bench.{secrets.token_hex(4)}"
    items = [(wav, "audio.wav")]
    if bundle == "current":
        bundle_expr = f"{rpath(remote_dir)}/current"
    else:
        local = Path(bundle)
        ModelManifest.load(local)  # a clear error here for a folder that is no bundle
        items += [(p, f"bundle/{rel}") for p, rel in bundle_items(local)]
        bundle_expr = f"{rpath(staging)}/bundle"
    upload(target, items, rpath(staging), "the bench inputs")
    cmd = (f"S={rpath(staging)}\ntrap 'rm -rf \"$S\"' EXIT\n"
           f"{edgekd_cmd(remote_dir)} bench {bundle_expr} --wav {rpath(staging)}/audio.wav --json {rpath(staging)}/result.json "
           f"--backend {shlex.quote(backend)} --mode {shlex.quote(mode)} --threads {int(threads)} --repeats {int(repeats)} >&2 || exit $?\n"
           f"cat {rpath(staging)}/result.json")
    res = target.run(cmd, check=False, what="bench", timeout_s=3600)
    if res.returncode != 0:
        raise BoardError(f"edgekd bench failed on {target.destination}: {last_line(res.stderr)}")
    try:
        result = json.loads(res.stdout)
    except ValueError:
        raise BoardError(f"the bench on {target.destination} returned no JSON ({last_line(res.stdout) or 'empty output'})") from None
    missing = [k for k in REQUIRED_KEYS if k not in result]
    if missing:
        raise BoardError(f"the bench result from {target.destination} lacks {', '.join(missing)}; is the board's edgekd older? redeploy with --reinstall")
    result["board"] = {"destination": target.destination, "host": host_slug(target.destination)}
    return result
