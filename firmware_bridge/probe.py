"""``edgekd board info``: what a board is (arch, OS, Python, glibc, CPU and its flags, disk, audio inputs).

The probe is a stdlib-only Python program sent on ssh's stdin, so nothing is installed to ask.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from firmware_bridge.errors import BoardError
from firmware_bridge.ssh import SshTarget, last_line, rpath

__all__ = ["BoardInfo", "probe_board", "PROBE_PROGRAM"]

NO_PYTHON_EXIT = 42

# Runs on the board with its own python3 (3.8+ is enough to answer). argv[1] = the edgekd folder there.
PROBE_PROGRAM = r'''
import getpass, json, os, platform, shutil, subprocess, sys
root = os.path.expanduser(sys.argv[1])
def read(p):
    try:
        with open(p, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""
osr = dict(l.split("=", 1) for l in read("/etc/os-release").splitlines() if "=" in l)
cpu = read("/proc/cpuinfo")
model, flags = "", []
for line in cpu.splitlines():
    k, _, v = line.partition(":")
    k = k.strip()
    if k in ("model name", "Model", "Hardware") and not model:
        model = v.strip()
    if k in ("flags", "Features") and not flags:
        flags = v.split()
dt_model = read("/proc/device-tree/model").strip("\x00\n ")
probe = root
while not os.path.exists(probe) and os.path.dirname(probe) != probe:
    probe = os.path.dirname(probe)
du = shutil.disk_usage(probe)
cards = [l.strip() for l in read("/proc/asound/cards").splitlines() if l.strip()[:1].isdigit()]
inputs = []
if shutil.which("arecord"):
    try:
        out = subprocess.run(["arecord", "-l"], capture_output=True, text=True, timeout=10).stdout
        inputs = [l.strip() for l in out.splitlines() if l.startswith("card ")]
    except Exception:
        pass
venv_py = os.path.join(root, "venv", "bin", "python")
kit = ""
if os.path.exists(venv_py):
    try:
        kit = subprocess.run([venv_py, "-c", "import importlib.metadata as m; print(m.version('edgekd'))"],
                             capture_output=True, text=True, timeout=60).stdout.strip()
    except Exception:
        kit = ""
cur = os.path.join(root, "current")
mem = 0
for line in read("/proc/meminfo").splitlines():
    if line.startswith("MemTotal:"):
        mem = int(line.split()[1]) * 1024
print(json.dumps({
    "arch": platform.machine(), "os": osr.get("PRETTY_NAME", "").strip('"') or platform.platform(),
    "python": platform.python_version(), "python_path": sys.executable,
    "glibc": (os.confstr("CS_GNU_LIBC_VERSION") or "").replace("glibc ", ""),
    "cpu": model or dt_model or platform.processor(), "cpu_flags": flags, "cores": os.cpu_count(), "mem_bytes": mem,
    "board_model": dt_model, "jetson_l4t": read("/etc/nv_tegra_release").split(",")[0].strip(),
    "disk_free_bytes": du.free, "disk_path": probe, "audio_cards": cards, "audio_inputs": inputs,
    "systemd": os.path.isdir("/run/systemd/system"), "is_root": os.geteuid() == 0,
    "venv_python": venv_py if os.path.exists(venv_py) else "", "edgekd_version": kit,
    "current": os.path.basename(os.path.realpath(cur)) if os.path.islink(cur) else "",
    "user": getpass.getuser(), "edgekd_dir": root,
}))
'''

# CPU features that matter for int8 inference speed, as /proc/cpuinfo spells them.
_INTERESTING = {"asimd": "NEON", "asimddp": "ARM dot-product", "i8mm": "ARM int8 matmul", "sve": "SVE",
                "avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX int8"}


@dataclass(frozen=True)
class BoardInfo:
    arch: str
    os: str
    python: str
    python_path: str
    glibc: str
    cpu: str
    cpu_flags: list[str]
    cores: int
    mem_bytes: int
    board_model: str
    jetson_l4t: str
    disk_free_bytes: int
    disk_path: str
    audio_cards: list[str]
    audio_inputs: list[str]
    systemd: bool
    is_root: bool
    venv_python: str
    edgekd_version: str
    current: str
    user: str
    edgekd_dir: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def python_tuple(self) -> tuple[int, int]:
        major, minor = self.python.split(".")[:2]
        return int(major), int(minor)

    @property
    def glibc_tuple(self) -> tuple[int, int]:
        try:
            major, minor = self.glibc.split(".")[:2]
            return int(major), int(minor)
        except ValueError:
            return (0, 0)

    def notable_flags(self) -> list[str]:
        have = set(self.cpu_flags)
        return [label for flag, label in _INTERESTING.items() if flag in have]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d["notable_cpu_features"] = self.notable_flags()
        return d

    def summary_lines(self) -> list[str]:
        gib = 1024**3
        return [
            f"arch      {self.arch}",
            f"os        {self.os}" + (f" (Jetson {self.jetson_l4t})" if self.jetson_l4t else ""),
            f"board     {self.board_model or '-'}",
            f"python    {self.python} ({self.python_path}), glibc {self.glibc or 'not glibc'}",
            f"cpu       {self.cpu}, {self.cores} cores, {self.mem_bytes / gib:.1f} GiB RAM",
            f"features  {', '.join(self.notable_flags()) or '-'}",
            f"disk      {self.disk_free_bytes / gib:.1f} GiB free at {self.disk_path}",
            f"audio in  {'; '.join(self.audio_inputs or self.audio_cards) or 'none found'}",
            f"systemd   {'yes' if self.systemd else 'no'}",
            f"edgekd    {self.edgekd_version or 'not installed'}" + (f", current bundle {self.current}" if self.current else ""),
        ]


def probe_board(target: SshTarget, remote_dir: str, python: str = "python3") -> BoardInfo:
    """Ask the board what it is. Raises ``BoardError`` (one line) when it has no usable Python."""
    script = (f"command -v {shlex.quote(python)} >/dev/null 2>&1 || exit {NO_PYTHON_EXIT}\n"
              f"exec {shlex.quote(python)} - {rpath(remote_dir)}")
    res = target.run(script, stdin=PROBE_PROGRAM.encode(), check=False, what="probe")
    if res.returncode == NO_PYTHON_EXIT:
        raise BoardError(f"{python} is not on the PATH of {target.destination}; install Python 3.10+ there "
                         f"(apt install python3 python3-venv) or pass --python PATH")
    if res.returncode != 0:
        raise BoardError(f"probing {target.destination} failed: {last_line(res.stderr) or 'no output'}")
    try:
        d = json.loads(res.stdout.strip().splitlines()[-1])
        return BoardInfo(**d)
    except (ValueError, TypeError, IndexError) as e:
        raise BoardError(f"the probe on {target.destination} answered something unreadable ({e}); is {python} a CPython 3?") from None
