"""Facts about the machine a number was measured on (recorded in every result file)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["cpu_model", "machine_facts", "provenance"]

_LIBS = ("numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime", "torch", "onnx", "openwakeword", "edgekd")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (x86 "model name", ARM "Model"/"Hardware"), else platform's guess."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Model", "Hardware"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def machine_facts() -> dict[str, Any]:
    """CPU, cores, arch, OS, Python and the versions of the libraries that matter, plus the date (UTC)."""
    versions = {}
    for lib in _LIBS:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def provenance(measured: str, bundle: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The block every result file carries: what was measured, on which bundle (its folder and the sha256 of its
    manifest, which lists every file's sha256), where (machine, library versions, date) and by which command."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("edgekd", "__main__.py"):
        argv[0] = "edgekd"
    block: dict[str, Any] = {"measured": measured, "command": shlex.join(argv), "machine": machine_facts()}
    if bundle is not None:
        manifest = Path(bundle) / "manifest.json"
        block["bundle"] = str(bundle)
        if manifest.is_file():
            from edgekd.runtime.manifest import sha256_file

            block["bundle_sha256"] = sha256_file(manifest)
    return block


def machine_slug() -> str:
    """A folder name for this machine's results: arch plus a short CPU name, e.g. ``x86_64-intel-xeon-processor``."""
    import re

    cpu = re.sub(r"\(r\)|\(tm\)|cpu|@.*$", "", cpu_model().lower())
    cpu = re.sub(r"[^a-z0-9]+", "-", cpu).strip("-")[:40] or "cpu"
    return f"{platform.machine()}-{cpu}"
