"""The always-on systemd service on a board: ``edgekd run current --mic``, restarted on failure, events in the journal."""

from __future__ import annotations

import shlex

from firmware_bridge.errors import BoardError
from firmware_bridge.ssh import RemoteResult, SshTarget, last_line

__all__ = ["UNIT_NAME", "unit_text", "systemd_quote", "install_service", "service_status", "service_stop"]

UNIT_NAME = "edgekd.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
NO_SYSTEMD_EXIT, NO_ROOT_EXIT = 43, 44
# sudo without a password prompt when not root; systemd must be the init system
_PRELUDE = (f"command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] || exit {NO_SYSTEMD_EXIT}\n"
            "SUDO=''; if [ \"$(id -u)\" != 0 ]; then SUDO='sudo -n'; fi\n")


def systemd_quote(word: str, executable: bool = False) -> str:
    """One word of ExecStart= in systemd's own syntax: double quotes, C escapes, ``%`` doubled, and ``$`` doubled in
    arguments (systemd substitutes variables in arguments, not in the executable's path)."""
    esc = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{esc if executable else esc.replace("$", "$$")}"'


def unit_text(edgekd_dir: str, user: str, backend: str = "onnx", device: str | None = None, threads: int = 1,
              ort_providers: tuple[str, ...] = ()) -> str:
    """The unit file. ``edgekd_dir`` is the absolute folder holding ``venv/`` and ``current``; ``ort_providers``
    (a preset's GPU providers) become ``EDGEKD_ORT_PROVIDERS``, used only where that onnxruntime has them."""
    argv = [f"{edgekd_dir}/venv/bin/python", "-m", "edgekd", "run", f"{edgekd_dir}/current", "--mic", "--backend", backend, "--threads", str(threads)]
    if device is not None:
        argv += ["--device", device]
    return "\n".join([
        "[Unit]",
        "Description=edgekd always-on audio detector (bundle: current)",
        "After=sound.target network-online.target",
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=simple",
        f"User={user}",
        "SupplementaryGroups=audio",
        f"WorkingDirectory={edgekd_dir.replace('%', '%%')}",  # taken literally apart from % specifiers
        "ExecStart=" + " ".join(systemd_quote(a, executable=i == 0) for i, a in enumerate(argv)),
        "Environment=PYTHONUNBUFFERED=1",
        *([f"Environment=EDGEKD_ORT_PROVIDERS={','.join(ort_providers)}"] if ort_providers else []),
        "Restart=on-failure",
        "RestartSec=2",
        "Nice=-5",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def _shell_word(path: str) -> str:
    """A path as one shell word a user can paste: a leading ``~/`` stays outside the quotes so the shell expands it."""
    return "~/" + shlex.quote(path[2:]) if path.startswith("~/") else shlex.quote(path)


def _run(target: SshTarget, script: str, stdin: bytes | None, what: str, edgekd_dir: str = "~/edgekd") -> RemoteResult:
    res = target.run(_PRELUDE + script, stdin=stdin, check=False, what=what)
    if res.returncode == NO_SYSTEMD_EXIT:
        raise BoardError(f"systemd is not running on {target.destination} (needed to {what}); "
                         f"run the detector by hand there: {_shell_word(edgekd_dir + '/venv/bin/python')} -m edgekd run "
                         f"{_shell_word(edgekd_dir + '/current')} --mic")
    if res.returncode == NO_ROOT_EXIT:
        raise BoardError(f"{what} on {target.destination} needs root: log in as root or allow passwordless sudo for systemctl")
    if res.returncode != 0:
        raise BoardError(f"{what} failed on {target.destination}: {last_line(res.stderr or res.stdout)}")
    return res


def install_service(target: SshTarget, unit: str, edgekd_dir: str = "~/edgekd") -> None:
    """Write the unit, enable it and (re)start it. ``edgekd_dir`` only shapes the message when systemd is missing."""
    _run(target, f"$SUDO tee {UNIT_PATH} >/dev/null || exit {NO_ROOT_EXIT}\n"
         f"$SUDO systemctl daemon-reload && $SUDO systemctl enable {UNIT_NAME} && $SUDO systemctl restart {UNIT_NAME}",
         unit.encode(), "install the service", edgekd_dir)


def service_status(target: SshTarget, lines: int = 20) -> str:
    """``systemctl status`` plus the last detections from the journal."""
    res = _run(target, f"systemctl status {UNIT_NAME} --no-pager -n 0 || true\n"
               f"journalctl -u {UNIT_NAME} -n {int(lines)} --no-pager -o cat || true", None, "show the service's status")
    return res.stdout


def service_stop(target: SshTarget, disable: bool = False) -> None:
    _run(target, f"$SUDO systemctl stop {UNIT_NAME}" + (f" && $SUDO systemctl disable {UNIT_NAME}" if disable else ""), None,
         "stop the service")


def restart_if_installed(target: SshTarget) -> bool:
    """Restart the service after a rollback when it is installed; False when there is none."""
    res = target.run(f"[ -f {UNIT_PATH} ] && [ -d /run/systemd/system ] || exit 0\n"
                     f"SUDO=''; [ \"$(id -u)\" = 0 ] || SUDO='sudo -n'\n$SUDO systemctl restart {shlex.quote(UNIT_NAME)} && echo restarted",
                     check=False, what="restarting the service")
    return "restarted" in res.stdout
