"""Build a Debian bookworm arm64 rootfs (Raspberry Pi OS-like) and run Python in it under qemu user mode.

Recipe (../shared/ENVIRONMENT.md): debootstrap stage one + ``dpkg-deb -x`` of its packages (no emulated
second stage); the host's pip downloads aarch64 wheels and installs them with ``--target``; a fake
aarch64 /proc/cpuinfo (qemu shows the guest the host's, and onnxruntime then crashes); QEMU_CPU pins
the CPU model (the default advertises SVE/SME). With root and binfmt_misc: chroot. Without: proot.
Everything lives under one temporary folder; every mount is undone in ``close()``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
FAKE_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

"""


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({p.returncode}): {(p.stderr or p.stdout)[-1500:]}")
    return p


def emulation_mode() -> tuple[str | None, str]:
    """("chroot" | "proot" | None, reason)."""
    if not shutil.which("qemu-aarch64-static") or not shutil.which("debootstrap"):
        return None, "qemu-user-static and debootstrap are not installed (make test installs them when root)"
    if os.geteuid() == 0:
        binfmt = Path("/proc/sys/fs/binfmt_misc")
        try:
            if not (binfmt / "register").exists():
                _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)])
            if not (binfmt / "qemu-aarch64").exists():
                _run(["update-binfmts", "--enable", "qemu-aarch64"])
            if (binfmt / "qemu-aarch64").exists():
                return "chroot", "root with binfmt_misc"
        except (subprocess.CalledProcessError, FileNotFoundError):
            pass
    if shutil.which("proot"):
        return "proot", "no binfmt_misc: proot -q qemu-aarch64-static"
    return None, "cannot emulate arm64 here: no root with binfmt_misc and no proot"


class Rootfs:
    def __init__(self, base: Path, mode: str) -> None:
        self.base = base
        self.root = base / "rootfs"
        self.mode = mode
        self._mounts: list[Path] = []

    def build(self, wheels: Path, requirements: list[str]) -> None:
        _run(["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase", "--include=python3", "bookworm", str(self.root), MIRROR])
        for deb in sorted((self.root / "var/cache/apt/archives").glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(self.root)])
        plat = [a for p in PLATFORMS for a in ("--platform", p)]
        common = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", *plat]
        pip = [sys.executable, "-m", "pip"]
        _run([*pip, "download", "-q", *common, "--find-links", str(wheels), "-d", str(wheels), *requirements])
        _run([*pip, "install", "-q", "--no-index", "--find-links", str(wheels), *common, "--target", str(self.root / "opt/site"), *requirements])
        (self.base / "cpuinfo").write_text(FAKE_CPUINFO)

    def add(self, src: Path, dest: str) -> None:
        shutil.copytree(src, self.root / dest.lstrip("/"))

    def _mount(self, *args: str) -> None:
        _run(["mount", *args])
        self._mounts.append(Path(args[-1]))

    def prepare(self) -> None:
        """Mount proc, sys, dev and the fake cpuinfo into the rootfs (chroot mode); undone by ``close()``."""
        if self.mode != "chroot" or self._mounts:
            return
        for d in ("proc", "sys", "dev"):
            (self.root / d).mkdir(exist_ok=True)
        self._mount("-t", "proc", "proc", str(self.root / "proc"))
        self._mount("--rbind", "/sys", str(self.root / "sys"))
        self._mount("--rbind", "/dev", str(self.root / "dev"))
        self._mount("--bind", str(self.base / "cpuinfo"), str(self.root / "proc/cpuinfo"))

    def python(self, args: list[str], cpu: str, timeout: int = 600) -> subprocess.CompletedProcess:
        env = ["QEMU_CPU=" + cpu, "PYTHONPATH=/opt/site", "HOME=/tmp", "PATH=/usr/bin:/bin", "OPENBLAS_NUM_THREADS=1"]
        if self.mode == "chroot":
            cmd = ["chroot", str(self.root), "/usr/bin/env", "-i", *env, "/usr/bin/python3", *args]
        else:
            cmd = ["proot", "-q", "qemu-aarch64-static", "-r", str(self.root), "-b", f"{self.base / 'cpuinfo'}:/proc/cpuinfo",
                   "-b", "/dev", "/usr/bin/env", "-i", *env, "/usr/bin/python3", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def close(self) -> None:
        for m in reversed(self._mounts):
            subprocess.run(["umount", "-R", "-l", str(m)], capture_output=True)
        self._mounts.clear()
