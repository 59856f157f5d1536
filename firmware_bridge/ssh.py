"""Talk to a board through the system's OpenSSH client: run a POSIX sh script, stream bytes in and out.

Why the OpenSSH client and not a Python SSH library: it is already on every machine that reaches a board,
it reads the user's ``~/.ssh/config`` (jump hosts, agents, per-host keys) exactly as ``ssh`` does, and
host-key checking is OpenSSH's own. Every remote value is passed through ``shlex.quote``; the script runs
under ``sh -c`` so the board user's login shell does not matter.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from firmware_bridge.errors import BoardError

__all__ = ["SshTarget", "RemoteResult", "rpath"]


def rpath(path: str) -> str:
    """A remote path as a shell word: quoted, with a leading ``~/`` kept as ``"$HOME"/``."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


@dataclass(frozen=True)
class RemoteResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class SshTarget:
    """``user@host`` plus how to reach it. Host keys are checked (known_hosts) unless ``accept_new_host_key``."""

    destination: str
    port: int | None = None
    identity: Path | None = None
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    connect_timeout_s: int = 10
    extra_options: tuple[str, ...] = field(default_factory=tuple)

    @property
    def host(self) -> str:
        return self.destination.rsplit("@", 1)[-1]

    def _argv(self) -> list[str]:
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s}",
                "-o", "StrictHostKeyChecking=" + ("accept-new" if self.accept_new_host_key else "yes"),
                "-o", "LogLevel=ERROR"]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        if self.identity is not None:
            argv += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts is not None:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        for opt in self.extra_options:
            argv += ["-o", opt]
        # "--" ends the options: a destination that starts with "-" is a host name, never an ssh option.
        return argv + ["--", self.destination]

    def run(self, script: str, *, stdin: bytes | None = None, check: bool = True, what: str = "remote command",
            timeout_s: float | None = 1800) -> RemoteResult:
        """Run ``script`` under ``sh -c`` on the board. Connection failures always raise ``BoardError``;
        a non-zero exit raises only with ``check`` (the message names ``what`` and the last stderr line)."""
        argv = self._argv() + ["sh -c " + shlex.quote(script)]
        try:
            proc = subprocess.run(argv, input=stdin if stdin is not None else b"", capture_output=True, timeout=timeout_s)
        except FileNotFoundError:
            raise BoardError("the OpenSSH client (ssh) is not installed here: apt install openssh-client") from None
        except subprocess.TimeoutExpired:
            raise BoardError(f"{what} on {self.host} did not finish within {timeout_s:.0f} s; check the board's load and network") from None
        res = RemoteResult(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))
        if res.returncode == 255:
            raise BoardError(self._explain_connection_failure(res.stderr))
        if check and res.returncode != 0:
            raise BoardError(f"{what} failed on {self.host} (exit {res.returncode}): {last_line(res.stderr or res.stdout)}")
        return res

    def _explain_connection_failure(self, stderr: str) -> str:
        low = stderr.lower()
        where = self.destination + (f" port {self.port}" if self.port else "")
        if "host key verification failed" in low or "no matching host key" in low or "not in known_hosts" in low:
            if "remote host identification has changed" in low:
                return (f"the host key of {where} CHANGED since it was recorded in known_hosts; if the board was reinstalled, "
                        f"remove the old key with ssh-keygen -R, otherwise stop: someone may be intercepting")
            return (f"the host key of {where} is not in known_hosts; check its fingerprint, then rerun with "
                    f"--accept-new-host-key (or ssh to it once)")
        if "permission denied" in low or "too many authentication failures" in low:
            return f"SSH login to {where} was refused; install your public key on the board (ssh-copy-id {self.destination}) or pass --identity"
        if "invalid characters" in low or "invalid user name" in low:
            return f"{self.destination!r} is not a valid user@host name; give the board as user@host or user@IP"
        if "could not resolve hostname" in low or "name or service not known" in low:
            return f"cannot resolve the host name in {self.destination!r}; check the spelling or use the board's IP address"
        if "connection refused" in low:
            return f"connection to {where} refused: is sshd running on the board, and is the port right?"
        if "timed out" in low or "no route to host" in low or "network is unreachable" in low:
            return f"cannot reach {where} ({last_line(stderr)}); check the board is powered, on the network, and the address"
        return f"SSH to {where} failed: {last_line(stderr) or 'no message from ssh'}"


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""
