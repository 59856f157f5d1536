"""``edgekd selftest``: a bundle's golden checks on this machine, one line per check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli.common import EXIT_USER_ERROR, friendly_errors

__all__ = ["selftest_cmd"]


@friendly_errors
def selftest_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    backend: Annotated[str, typer.Option(help="Inference backend: auto, onnx or litert.")] = "auto",
    threads: Annotated[int, typer.Option(min=1, max=64, help="Inference threads.")] = 1,
) -> None:
    """Check every file's sha256, the golden input -> output within the manifest's tolerance, and the golden stream.

    Exit 0 only if every check passes. Needs only the runtime (no torch).
    """
    from edgekd.runtime.selftest import selftest

    checks = selftest(bundle, backend=backend, threads=threads)
    for c in checks:
        print(c.line(), flush=True)
    if not all(c.ok for c in checks):
        bad = next(c for c in checks if not c.ok)
        import sys

        print(f"error: selftest failed at {bad.name}: {bad.detail}", file=sys.stderr)
        raise typer.Exit(EXIT_USER_ERROR)
