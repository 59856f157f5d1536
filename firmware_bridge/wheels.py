"""The kit's own wheel (built from the source tree or taken from a wheelhouse) and wheel/board compatibility."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from firmware_bridge.errors import BoardError
from firmware_bridge.probe import BoardInfo

__all__ = ["kit_version", "kit_wheel", "wheel_fits", "check_wheelhouse", "BACKEND_DISTS"]

# the distribution each runtime extra brings that has compiled, platform-specific wheels
BACKEND_DISTS = {"onnx": "onnxruntime", "litert": "ai_edge_litert"}
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def kit_version() -> str:
    try:
        return metadata.version("edgekd")
    except metadata.PackageNotFoundError:
        from edgekd import __version__

        return __version__


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _source_tree() -> Path | None:
    import edgekd

    root = Path(edgekd.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "firmware_bridge").is_dir() else None


def kit_wheel(wheelhouse: Path | None, work_dir: Path) -> Path:
    """``edgekd-VERSION-py3-none-any.whl``: built from the source tree when edgekd runs from one (so the board gets
    exactly the code that runs here), else this version's wheel from ``wheelhouse``."""
    version = kit_version()
    src = _source_tree()
    if src is None:
        found = sorted(wheelhouse.glob(f"edgekd-{version}-*.whl")) if wheelhouse is not None else []
        if found:
            return found[-1]
        raise BoardError(f"no wheel of edgekd {version} to install on the board: pass --wheelhouse DIR holding edgekd-{version}-py3-none-any.whl")
    out = Path(tempfile.mkdtemp(prefix="kit-wheel-", dir=work_dir))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
                          capture_output=True, text=True)
    wheels = sorted(out.glob("edgekd-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise BoardError(f"building the edgekd wheel from {src} failed ({last}); pip install setuptools wheel, or pass --wheelhouse DIR")
    return wheels[-1]


def _platform_fits(plat: str, info: BoardInfo) -> bool:
    if plat == "any":
        return True
    if plat == f"linux_{info.arch}":
        return True
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", plat)
    if m:
        return m.group(3) == info.arch and (int(m.group(1)), int(m.group(2))) <= info.glibc_tuple
    for legacy, glibc in _LEGACY_MANYLINUX.items():
        if plat == f"{legacy}_{info.arch}":
            return glibc <= info.glibc_tuple
    return False


def _python_fits(py: str, abi: str, info: BoardInfo) -> bool:
    major, minor = info.python_tuple
    if py in ("py3", f"py{major}", f"py{major}{minor}"):
        return True
    if py == f"cp{major}{minor}":
        return True
    m = re.fullmatch(r"cp(\d)(\d+)", py)
    return bool(m and abi == "abi3" and (int(m.group(1)), int(m.group(2))) <= (major, minor))


def wheel_fits(filename: str, info: BoardInfo) -> bool:
    """Whether a wheel file (by its PEP 427 name) installs on the probed board."""
    parts = filename[:-4].split("-") if filename.endswith(".whl") else []
    if len(parts) not in (5, 6):
        return False
    py, abi, plat = parts[-3:]
    return any(_python_fits(p, abi, info) for p in py.split(".")) and any(_platform_fits(q, info) for q in plat.split("."))


def check_wheelhouse(wheelhouse: Path, info: BoardInfo, backend: str, destination: str) -> None:
    """Refuse a wheelhouse that lacks a compiled wheel the board needs (numpy, the backend)."""
    if not wheelhouse.is_dir():
        raise BoardError(f"--wheelhouse {wheelhouse} is not a folder; build one with: make wheelhouse")
    names = [p.name for p in wheelhouse.glob("*.whl")]
    tag = f"cp{info.python_tuple[0]}{info.python_tuple[1]} {info.arch} glibc {info.glibc}"
    for dist in ("numpy", BACKEND_DISTS[backend]):
        mine = [n for n in names if _norm(n.split("-")[0]) == _norm(dist)]
        if not any(wheel_fits(n, info) for n in mine):
            have = ", ".join(mine) or "none"
            raise BoardError(f"no {dist} wheel in {wheelhouse} fits {destination} ({tag}; found: {have}); "
                             f"fetch one with: pip download {dist} --only-binary=:all: --python-version "
                             f"{info.python_tuple[0]}.{info.python_tuple[1]} --platform manylinux2014_{info.arch} -d {wheelhouse}")
