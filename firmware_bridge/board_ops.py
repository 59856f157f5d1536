"""Board-side bookkeeping, run there as ``venv/bin/python -m firmware_bridge.board_ops VERB ROOT ...``.

Layout under ROOT (default ``~/edgekd``)::

    venv/                      the runtime (edgekd[onnx] or edgekd[litert])
    bundles/NAME-SHA12/        every deployed bundle, verified before it got here
    current -> bundles/...     what `edgekd run current` and the service use
    previous -> bundles/...    what `edgekd rollback` switches back to
    staging/                   uploads in progress (never pointed at)

Symlinks are switched by creating ``current.new`` and renaming it over ``current`` (rename(2) is atomic),
so a reader sees the old bundle or the new one, never a missing one. Stdlib only.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

__all__ = ["switch", "rollback", "state", "prune", "main"]

KEEP = 3  # bundles kept besides current and previous


def _link(root: Path, name: str, rel: str) -> None:
    tmp = root / f"{name}.new"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(rel, tmp)
    os.replace(tmp, root / name)


def _read(root: Path, name: str) -> str:
    p = root / name
    return os.readlink(p) if p.is_symlink() else ""


def state(root: Path) -> dict[str, str]:
    return {"current": _read(root, "current"), "previous": _read(root, "previous")}


def switch(root: Path, rel: str) -> dict[str, str]:
    """Point ``current`` at ``rel`` (relative to root); the old current becomes ``previous``."""
    if not (root / rel / "manifest.json").is_file():
        raise SystemExit(f"{root / rel} holds no bundle; nothing switched")
    old = _read(root, "current")
    if old and old != rel:
        _link(root, "previous", old)
    _link(root, "current", rel)
    return state(root)


def rollback(root: Path) -> dict[str, str]:
    """Swap ``current`` and ``previous``."""
    cur, prev = _read(root, "current"), _read(root, "previous")
    if not prev or not (root / prev / "manifest.json").is_file():
        raise SystemExit("there is no previous bundle to roll back to")
    _link(root, "current", prev)
    if cur:
        _link(root, "previous", cur)
    return state(root)


def prune(root: Path, keep: int = KEEP) -> list[str]:
    """Delete old bundles and stale staging folders, never current or previous."""
    in_use = {os.path.normpath(v) for v in state(root).values() if v}
    bundles = sorted((p for p in (root / "bundles").glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    spare = [p for p in bundles if os.path.normpath(str(p.relative_to(root))) not in in_use]
    for p in spare[keep:]:
        shutil.rmtree(p)
        removed.append(p.name)
    return removed


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        raise SystemExit("usage: python -m firmware_bridge.board_ops switch|rollback|state|prune ROOT [BUNDLE_REL]")
    verb, root = args[0], Path(args[1]).expanduser()
    if verb == "switch" and len(args) == 3:
        out: object = switch(root, args[2])
    elif verb == "rollback":
        out = rollback(root)
    elif verb == "state":
        out = state(root)
    elif verb == "prune":
        out = prune(root)
    else:
        raise SystemExit(f"unknown board_ops call: {' '.join(args)}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
