"""``edgekd deploy | rollback | board | service``: bundles onto boards over SSH (firmware_bridge)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.common import friendly_errors, notice
from firmware_bridge.ssh import SshTarget

__all__ = ["deploy_cmd", "rollback_cmd", "board_app", "service_app", "ssh_target", "HostArg", "PortOpt", "IdentityOpt", "KnownHostsOpt",
           "AcceptNewOpt", "RemoteDirOpt"]

HostArg = Annotated[str, typer.Argument(help="The board: user@host (or a Host alias from ~/.ssh/config).", show_default=False)]
PortOpt = Annotated[Optional[int], typer.Option("--port", "-p", min=1, max=65535, help="SSH port (default: ssh's own, from ~/.ssh/config or 22).")]
IdentityOpt = Annotated[Optional[Path], typer.Option("--identity", "-i", help="Private key file (default: ssh's own).")]
KnownHostsOpt = Annotated[Optional[Path], typer.Option("--known-hosts", help="known_hosts file to check the board's host key against (default: ssh's).")]
AcceptNewOpt = Annotated[bool, typer.Option("--accept-new-host-key",
                                            help="Trust and record the board's host key the first time (a changed key is still refused).")]
RemoteDirOpt = Annotated[str, typer.Option("--remote-dir", help="Folder on the board holding venv/, bundles/, current and previous.")]
PythonOpt = Annotated[str, typer.Option("--python", help="Python on the board used to create the venv.")]


def ssh_target(host: str, port: Optional[int], identity: Optional[Path], known_hosts: Optional[Path], accept_new: bool) -> SshTarget:
    """The board to talk to; a missing --identity file is refused here, before any connection."""
    from edgekd.core.errors import ConfigError

    if identity is not None and not identity.is_file():
        raise ConfigError(f"--identity {identity}: no such key file; give the private key ssh should use")
    return SshTarget(host, port=port, identity=identity, known_hosts=known_hosts, accept_new_host_key=accept_new)


@friendly_errors
def deploy_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder to deploy.", show_default=False)],
    host: HostArg,
    target: Annotated[Optional[str], typer.Option("--target", help="Board preset (pi4, pi5, jetson-orin, ...): checks arch, picks the backend.")] = None,
    backend: Annotated[Optional[str], typer.Option(help="Runtime extra on the board: onnx or litert (default: the preset's, else onnx).")] = None,
    wheelhouse: Annotated[Optional[Path], typer.Option(help="Folder of wheels for an offline board (make wheelhouse); else PyPI.")] = None,
    service: Annotated[bool, typer.Option("--service", help="Install and (re)start the systemd unit running `edgekd run current --mic`.")] = False,
    device: Annotated[Optional[str], typer.Option(help="--service: microphone index or name substring (default: the system default).")] = None,
    reinstall: Annotated[bool, typer.Option("--reinstall", help="Reinstall the runtime even when the board has this edgekd version.")] = False,
    remote_dir: RemoteDirOpt = "~/edgekd",
    python: PythonOpt = "python3",
    threads: Annotated[int, typer.Option(min=1, max=64, help="Inference threads for the self-test and the service.")] = 1,
    port: PortOpt = None,
    identity: IdentityOpt = None,
    known_hosts: KnownHostsOpt = None,
    accept_new_host_key: AcceptNewOpt = False,
) -> None:
    """Put BUNDLE on the board and make it `current`: check the board (arch, Python, glibc, disk, wheels), create or
    reuse a venv with the runtime extra only, upload to a staging folder, verify every sha256 and run the golden
    self-test there, then switch the `current` symlink atomically (the old one becomes `previous`). On any failure
    `current` stays as it was. Safe to repeat."""
    from firmware_bridge.deploy import DeployOptions, deploy
    from firmware_bridge.targets import get_target

    t = ssh_target(host, port, identity, known_hosts, accept_new_host_key)
    preset = get_target(target)
    opts = DeployOptions(remote_dir=remote_dir, python=python, backend=backend, target=preset, wheelhouse=wheelhouse, reinstall=reinstall,
                         threads=threads, service=service)
    res = deploy(bundle, t, opts, log=notice)
    for line in res.selftest:
        notice(f"  board: {line}")
    notice(f"{host}: current -> {res.current}" + (f" (previous -> {res.previous})" if res.previous else ""))
    if service:
        from firmware_bridge.errors import BoardError
        from firmware_bridge.service import install_service, unit_text

        try:
            unit = unit_text(res.board.edgekd_dir, res.board.user, opts.backend or (preset.backend if preset else "onnx"), device, threads,
                             preset.providers if preset else ())
            install_service(t, unit, res.board.edgekd_dir)
        except BoardError as e:
            raise BoardError(f"the bundle is deployed and current, but the service was not installed: {e}") from None
        notice(f"{host}: service edgekd.service enabled and running")
    print(res.current)


@friendly_errors
def rollback_cmd(
    host: HostArg,
    remote_dir: RemoteDirOpt = "~/edgekd",
    backend: Annotated[str, typer.Option(help="Backend for the self-test after the switch: onnx or litert.")] = "onnx",
    port: PortOpt = None,
    identity: IdentityOpt = None,
    known_hosts: KnownHostsOpt = None,
    accept_new_host_key: AcceptNewOpt = False,
) -> None:
    """Switch the board's `current` back to `previous` (and `previous` to the one rolled away from), self-test it,
    and restart the service if one is installed."""
    from firmware_bridge.deploy import rollback
    from firmware_bridge.service import restart_if_installed

    t = ssh_target(host, port, identity, known_hosts, accept_new_host_key)
    links = rollback(t, remote_dir, backend=backend)
    restarted = restart_if_installed(t)
    notice(f"{host}: current -> {links['current']} (previous -> {links['previous']})" + ("; service restarted" if restarted else ""))
    print(links["current"])


board_app = typer.Typer(help="Look at boards: what a board is, and the presets --target knows.", no_args_is_help=True)


@board_app.command("info")
@friendly_errors
def board_info_cmd(
    host: HostArg,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of the summary.")] = False,
    remote_dir: RemoteDirOpt = "~/edgekd",
    python: PythonOpt = "python3",
    port: PortOpt = None,
    identity: IdentityOpt = None,
    known_hosts: KnownHostsOpt = None,
    accept_new_host_key: AcceptNewOpt = False,
) -> None:
    """Arch, OS, Python, glibc, CPU model and features (ARM dot-product, AVX-512 VNNI...), free disk, audio inputs,
    and what edgekd has deployed there. Installs nothing."""
    from firmware_bridge.probe import probe_board

    info = probe_board(ssh_target(host, port, identity, known_hosts, accept_new_host_key), remote_dir, python)
    if json_out:
        print(json.dumps(info.to_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(info.summary_lines()))


@board_app.command("targets")
def board_targets_cmd() -> None:
    """List the --target presets: arch, backend, what the stock OS image ships."""
    from firmware_bridge.targets import TARGETS

    for t in TARGETS.values():
        print(f"{t.name:14s} {t.arch:8s} {t.backend:7s} {t.python_hint}. {t.notes}")


service_app = typer.Typer(help="The systemd service on a board (installed by `edgekd deploy --service`).", no_args_is_help=True)


@service_app.command("status")
@friendly_errors
def service_status_cmd(
    host: HostArg,
    lines: Annotated[int, typer.Option(min=1, help="Journal lines (detections) to show.")] = 20,
    port: PortOpt = None,
    identity: IdentityOpt = None,
    known_hosts: KnownHostsOpt = None,
    accept_new_host_key: AcceptNewOpt = False,
) -> None:
    """systemctl status of edgekd.service and its last detections from the journal."""
    from firmware_bridge.service import service_status

    print(service_status(ssh_target(host, port, identity, known_hosts, accept_new_host_key), lines), end="")


@service_app.command("stop")
@friendly_errors
def service_stop_cmd(
    host: HostArg,
    disable: Annotated[bool, typer.Option("--disable", help="Also keep it from starting at boot.")] = False,
    port: PortOpt = None,
    identity: IdentityOpt = None,
    known_hosts: KnownHostsOpt = None,
    accept_new_host_key: AcceptNewOpt = False,
) -> None:
    """Stop edgekd.service on the board."""
    from firmware_bridge.service import service_stop

    service_stop(ssh_target(host, port, identity, known_hosts, accept_new_host_key), disable)
    notice(f"{host}: edgekd.service stopped" + (" and disabled" if disable else ""))
