"""``edgekd deploy`` and ``edgekd rollback``: a bundle onto a board, verified, self-tested, switched atomically.

Order of a deploy (each step fails with one line and leaves ``current`` where it was):
check the bundle here -> probe the board (arch, Python, glibc, disk) -> check the wheelhouse fits ->
create or reuse the venv (runtime extra only) -> upload to ``staging/`` -> on the board: every sha256 and
the golden self-test on the staged copy -> move to ``bundles/`` -> switch ``current`` -> self-test
``current`` again (rolled back if it fails) -> optionally (re)start the systemd service.
"""

from __future__ import annotations

import io
import json
import secrets
import shlex
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from edgekd.core.errors import BundleError
from edgekd.runtime.manifest import ModelManifest, sha256_file
from firmware_bridge.errors import BoardError, DeployError
from firmware_bridge.probe import BoardInfo, probe_board
from firmware_bridge.ssh import SshTarget, last_line, rpath
from firmware_bridge.targets import Target, check_board
from firmware_bridge.wheels import check_wheelhouse, kit_version, kit_wheel

__all__ = ["DeployOptions", "DeployResult", "deploy", "rollback", "upload", "bundle_items", "bundle_id", "venv_bin", "edgekd_cmd", "require_runtime",
           "runtime_extras"]

VENV_BYTES = 300 * 1024**2  # a venv with numpy + onnxruntime (or ai-edge-litert) and the kit, with headroom
NO_VENV_EXIT = 45


@dataclass(frozen=True)
class DeployOptions:
    remote_dir: str = "~/edgekd"
    python: str = "python3"
    backend: str | None = None
    target: Target | None = None
    wheelhouse: Path | None = None
    reinstall: bool = False
    threads: int = 1
    service: bool = False  # the caller installs the systemd unit afterwards: a board without systemd is refused up front


@dataclass(frozen=True)
class DeployResult:
    bundle: str
    board: BoardInfo
    current: str
    previous: str
    installed: bool
    selftest: list[str]


def bundle_id(bundle: Path, manifest: ModelManifest) -> str:
    """``NAME-SHA12``: a folder name that changes whenever any byte of the bundle (its manifest) changes."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in manifest.name) or "bundle"
    return f"{safe}-{sha256_file(bundle / 'manifest.json')[:12]}"


def venv_bin(remote_dir: str, tool: str) -> str:
    return f"{rpath(remote_dir)}/venv/bin/{tool}"


def edgekd_cmd(remote_dir: str) -> str:
    """The board's edgekd as ``venv/bin/python -m edgekd``: pip's ``venv/bin/edgekd`` launcher puts the venv path in
    double quotes for sh, which breaks (or runs a ``$(...)``) when that path holds shell characters."""
    return f"{venv_bin(remote_dir, 'python')} -m edgekd"


def _tar(items: Iterable[tuple[Path, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, arcname in items:
            tar.add(str(path), arcname=arcname, recursive=False)
    return buf.getvalue()


def upload(target: SshTarget, items: list[tuple[Path, str]], remote_folder_expr: str, what: str) -> None:
    """Copy files (local path, relative name) into a folder on the board (a shell word from ``rpath``), as one tar stream."""
    script = f"set -e\nmkdir -p {remote_folder_expr}\ntar -xf - -C {remote_folder_expr}"
    target.run(script, stdin=_tar(items), what=f"uploading {what}")


def bundle_items(bundle: Path) -> list[tuple[Path, str]]:
    files = sorted(p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())
    return [(p, p.relative_to(bundle).as_posix()) for p in files]


def _board_ops(target: SshTarget, remote_dir: str, *args: str, what: str) -> dict[str, str]:
    cmd = " ".join([venv_bin(remote_dir, "python"), "-m", "firmware_bridge.board_ops", *map(shlex.quote, args[:1]), rpath(remote_dir),
                    *map(shlex.quote, args[1:])])
    res = target.run(cmd, what=what)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _selftest(target: SshTarget, remote_dir: str, bundle_expr: str, backend: str, threads: int) -> tuple[bool, list[str]]:
    cmd = f"{edgekd_cmd(remote_dir)} selftest {bundle_expr} --backend {shlex.quote(backend)} --threads {int(threads)}"
    res = target.run(cmd, check=False, what="self-test")
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    return res.returncode == 0, lines


def runtime_extras(manifest: ModelManifest, backend: str) -> tuple[str, ...]:
    """The kit's extras a board needs for ``manifest`` on ``backend``: the backend's, and onnx as well for a two-stage
    bundle on LiteRT (its verifier runs on onnxruntime)."""
    return (backend, "onnx") if manifest.verifier and backend != "onnx" else (backend,)


def _install_runtime(target: SshTarget, info: BoardInfo, opts: DeployOptions, extras: tuple[str, ...], log: Callable[[str], None]) -> None:
    extra = ",".join(extras)
    with tempfile.TemporaryDirectory(prefix="edgekd-deploy-") as tmp:
        wheel = kit_wheel(opts.wheelhouse, Path(tmp))
        items = [(wheel, wheel.name)]
        if opts.wheelhouse is not None:
            items += [(p, p.name) for p in sorted(opts.wheelhouse.glob("*.whl")) if not p.name.startswith("edgekd-")]
        tag = secrets.token_hex(4)
        wheels_dir = f"{opts.remote_dir.rstrip('/')}/staging/wheels.{tag}"
        log(f"uploading {len(items)} wheel(s) to {target.destination}")
        upload(target, items, rpath(wheels_dir), "wheels")
        root, w = rpath(opts.remote_dir), rpath(wheels_dir)
        # Run pip from inside the wheels folder and name the wheel relatively: pip would read a ";" in an absolute
        # path as the start of an environment marker.
        index = "--no-index --find-links ." if opts.wheelhouse is not None else ""
        pip = f"{root}/venv/bin/python -m pip install -q --disable-pip-version-check"
        script = "\n".join([
            f"W={w}",
            "trap 'rm -rf \"$W\"' EXIT",
            f"if [ ! -x {root}/venv/bin/python ]; then {shlex.quote(opts.python)} -m venv {root}/venv || exit 46; fi",
            f"cd {w} || exit 47",
            f"{pip} {index} {shlex.quote(f'./{wheel.name}[{extra}]')} || exit 47",
            f"{pip} --no-deps --force-reinstall {shlex.quote(f'./{wheel.name}')} || exit 47",
        ])
        log(f"installing the runtime (edgekd[{extra}]) into {opts.remote_dir}/venv" + (" from the wheelhouse" if index else " from PyPI"))
        res = target.run(script, check=False, what="runtime install")
        if res.returncode == 46:
            raise BoardError(f"creating a venv with {opts.python} failed on {target.destination} ({last_line(res.stderr)}); "
                             f"install python3-venv there (apt install python3-venv)")
        if res.returncode != 0:
            where = "the wheelhouse" if index else "PyPI"
            hint = "add the missing wheels to the wheelhouse (make wheelhouse)" if index else "for an offline board pass --wheelhouse DIR"
            raise BoardError(f"installing edgekd[{extra}] from {where} failed on {target.destination} "
                             f"({info.arch}, Python {info.python}): {last_line(res.stderr)}; {hint}")


def deploy(bundle: Path, target: SshTarget, opts: DeployOptions, log: Callable[[str], None] = print,
           check_locally: bool = True) -> DeployResult:
    """Deploy ``bundle`` to the board and make it ``current``. See the module docstring for the order of steps."""
    bundle = Path(bundle)
    manifest = ModelManifest.load(bundle)
    if check_locally:
        try:
            manifest.verify_files(bundle)
        except BundleError as e:
            raise DeployError(f"refusing to deploy: {e}") from None
    backend = opts.backend or (opts.target.backend if opts.target else "onnx")
    if backend not in ("onnx", "litert"):
        raise BoardError(f"--backend {backend!r}: choose onnx or litert")
    if backend == "litert" and not manifest.tflite_file:
        raise BoardError(f"{bundle} has no .tflite model; deploy it with --backend onnx or export TFLite first (edgekd export tflite)")

    if opts.wheelhouse is not None and not opts.wheelhouse.is_dir():
        raise BoardError(f"--wheelhouse {opts.wheelhouse} is not a folder; build one with: make wheelhouse")
    info = probe_board(target, opts.remote_dir, opts.python)
    check_board(info, opts.target, target.destination)
    if opts.service and not info.systemd:
        raise BoardError(f"--service: systemd is not running on {target.destination}; deploy without --service and start the "
                         f"detector another way (nothing was changed on the board)")
    extras = runtime_extras(manifest, backend)
    if opts.wheelhouse is not None:
        for extra in extras:
            check_wheelhouse(opts.wheelhouse, info, extra, target.destination)
    install = opts.reinstall or not info.venv_python or info.edgekd_version != kit_version()
    need = sum(p.stat().st_size for p, _ in bundle_items(bundle)) + (VENV_BYTES if install else 0)
    if opts.wheelhouse is not None and install:
        need += sum(p.stat().st_size for p in opts.wheelhouse.glob("*.whl"))
    if info.disk_free_bytes < need:
        raise BoardError(f"only {info.disk_free_bytes / 2**20:.0f} MB free on {target.destination} at {info.disk_path}; this deploy needs about "
                         f"{need / 2**20:.0f} MB: free some space or pass --remote-dir on a larger disk")
    if install:
        _install_runtime(target, info, opts, extras, log)
    else:
        log(f"reusing the runtime in {opts.remote_dir}/venv (edgekd {info.edgekd_version})")

    bid = bundle_id(bundle, manifest)
    staging = f"{opts.remote_dir.rstrip('/')}/staging/{bid}.{secrets.token_hex(4)}"
    log(f"uploading {bundle} to {target.destination}:{staging}")
    upload(target, bundle_items(bundle), rpath(staging), "the bundle")
    ok, lines = _selftest(target, opts.remote_dir, rpath(staging), backend, opts.threads)
    if not ok:
        target.run(f"rm -rf {rpath(staging)}", check=False, what="cleanup")
        bad = next((ln for ln in lines if ln.startswith("error:")), lines[-1] if lines else "no output")
        prev = info.current or "nothing"
        raise DeployError(f"the bundle failed its checks on {target.destination} before the switch ({bad.removeprefix('error: ')}); "
                          f"`current` still points at {prev}")
    final = f"{opts.remote_dir.rstrip('/')}/bundles/{bid}"
    target.run(f"set -e\nmkdir -p {rpath(opts.remote_dir)}/bundles\nif [ -d {rpath(final)} ]; then rm -rf {rpath(staging)}; "
               f"else mv {rpath(staging)} {rpath(final)}; fi", what="moving the bundle into place")
    links = _board_ops(target, opts.remote_dir, "switch", f"bundles/{bid}", what="switching current")
    ok, lines = _selftest(target, opts.remote_dir, f"{rpath(opts.remote_dir)}/current", backend, opts.threads)
    if not ok:
        if links.get("previous"):
            _board_ops(target, opts.remote_dir, "rollback", what="rolling back")
        raise DeployError(f"`current` failed its self-test on {target.destination} after the switch ({lines[-1] if lines else 'no output'}); "
                          f"rolled back to {links.get('previous') or 'nothing'}")
    _board_ops(target, opts.remote_dir, "prune", what="pruning old bundles")
    return DeployResult(bundle=bid, board=info, current=links["current"], previous=links.get("previous", ""), installed=install, selftest=lines)


def require_runtime(target: SshTarget, remote_dir: str, what: str) -> None:
    """Refuse (one line) when the board has no edgekd venv under ``remote_dir``."""
    res = target.run(f"[ -x {venv_bin(remote_dir, 'python')} ] || exit {NO_VENV_EXIT}", check=False, what=what)
    if res.returncode == NO_VENV_EXIT:
        raise BoardError(f"the edgekd runtime is not installed under {remote_dir} on {target.destination}; run edgekd deploy first")


def rollback(target: SshTarget, remote_dir: str, backend: str = "onnx", threads: int = 1) -> dict[str, str]:
    """Switch ``current`` back to ``previous`` on the board and self-test it."""
    require_runtime(target, remote_dir, "rollback")
    cmd = f"{venv_bin(remote_dir, 'python')} -m firmware_bridge.board_ops rollback {rpath(remote_dir)}"
    res = target.run(cmd, check=False, what="rollback")
    if res.returncode != 0:
        raise BoardError(f"cannot roll back on {target.destination}: {last_line(res.stderr)}")
    links = json.loads(res.stdout.strip().splitlines()[-1])
    ok, lines = _selftest(target, remote_dir, f"{rpath(remote_dir)}/current", backend, threads)
    if not ok:
        raise BoardError(f"rolled back to {links['current']} on {target.destination}, but its self-test fails: {lines[-1] if lines else 'no output'}")
    return links
