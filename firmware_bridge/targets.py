"""Board presets (``--target``) and the checks that a board can run a bundle before anything is copied."""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge.errors import BoardError
from firmware_bridge.probe import BoardInfo

__all__ = ["Target", "TARGETS", "get_target", "check_board"]

# requires-python of the kit; onnxruntime and ai-edge-litert publish manylinux wheels for x86_64 and aarch64 only.
MIN_PYTHON = (3, 10)
WHEEL_ARCHES = ("x86_64", "aarch64")
# The oldest glibc the backend wheels we pin against are built for (manylinux_2_27 / 2_28).
MIN_GLIBC = (2, 28)


@dataclass(frozen=True)
class Target:
    name: str
    arch: str
    backend: str          # the runtime extra installed on the board: onnx or litert
    python_hint: str      # what the stock OS image ships
    notes: str
    providers: tuple[str, ...] = ()  # extra ONNX Runtime execution providers used when present


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("pi4", "aarch64", "onnx", "Pi OS Bookworm 64-bit: Python 3.11, glibc 2.36",
           "Cortex-A72, NEON, no dot-product: int8 runs on NEON kernels; use the 64-bit image (32-bit armv7l has no wheels)"),
    Target("pi5", "aarch64", "onnx", "Pi OS Bookworm 64-bit: Python 3.11, glibc 2.36",
           "Cortex-A76 with ARM dot-product (asimddp): int8 QLinearConv/QGemm use sdot kernels"),
    Target("jetson-orin", "aarch64", "onnx", "JetPack 6 (Ubuntu 22.04): Python 3.10, glibc 2.35",
           "CPU wheels from PyPI work; for GPU install NVIDIA's onnxruntime-gpu wheel (Jetson Zoo) into the venv via --wheelhouse",
           providers=("TensorrtExecutionProvider", "CUDAExecutionProvider")),
    Target("jetson-nano", "aarch64", "onnx", "Orin Nano, JetPack 6 (Ubuntu 22.04): Python 3.10, glibc 2.35",
           "as jetson-orin; the original Nano (JetPack 4, Python 3.6, glibc 2.27) is too old for the runtime",
           providers=("TensorrtExecutionProvider", "CUDAExecutionProvider")),
    Target("linux-x86_64", "x86_64", "onnx", "any glibc 2.28+ distribution with Python 3.10+", "generic x86_64 Linux"),
    Target("linux-aarch64", "aarch64", "onnx", "any glibc 2.28+ distribution with Python 3.10+", "generic 64-bit ARM Linux"),
)}


def get_target(name: str | None) -> Target | None:
    if name is None:
        return None
    if name not in TARGETS:
        raise BoardError(f"unknown --target {name!r}; choose one of: {', '.join(TARGETS)} (edgekd board targets)")
    return TARGETS[name]


def check_board(info: BoardInfo, target: Target | None, destination: str) -> None:
    """Refuse a board that cannot run the runtime, with what to do about it."""
    if target is not None and info.arch != target.arch:
        raise BoardError(f"{destination} is {info.arch}, but --target {target.name} is {target.arch}; "
                         f"pick the right --target (edgekd board targets) or the right board")
    if info.arch not in WHEEL_ARCHES:
        hint = "install the 64-bit OS image" if info.arch.startswith("arm") else "use an x86_64 or aarch64 board"
        raise BoardError(f"{destination} is {info.arch}: ONNX Runtime and LiteRT publish wheels for {' and '.join(WHEEL_ARCHES)} only; {hint}")
    if info.python_tuple < MIN_PYTHON:
        raise BoardError(f"{destination} has Python {info.python}; the runtime needs {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+ "
                         f"(install a newer python3 and pass --python PATH)")
    if not info.glibc:
        raise BoardError(f"{destination} does not use glibc (musl?); the backend wheels are manylinux: use a glibc distribution")
    if info.glibc_tuple < MIN_GLIBC:
        raise BoardError(f"{destination} has glibc {info.glibc}; the backend wheels need {MIN_GLIBC[0]}.{MIN_GLIBC[1]}+; upgrade the OS image")
