"""The ``edgekd`` command. Sub-apps per verb; heavy imports (torch, onnx) live inside command bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgekd import __version__
from edgekd.cli import data, export, teacher, train
from edgekd.cli.bench import bench_cmd
from edgekd.cli.board import board_app, deploy_cmd, rollback_cmd, service_app
from edgekd.cli.common import friendly_errors
from edgekd.cli.eval_stream import eval_stream_cmd
from edgekd.cli.evaluate import evaluate
from edgekd.cli.run import devices, run
from edgekd.cli.selftest import selftest_cmd
from edgekd.cli.tune import tune_cmd

__all__ = ["app", "main"]

app = typer.Typer(
    name="edgekd",
    help="Distil, quantize and run always-on audio models (keywords, wake words, sound events) on small boards, and deploy them there over SSH.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.add_typer(teacher.app, name="teacher")
app.add_typer(export.app, name="export")
app.command("run")(run)
app.command("devices")(devices)
app.command("eval")(evaluate)
app.command("eval-stream")(eval_stream_cmd)
app.command("selftest")(selftest_cmd)
app.command("bench")(bench_cmd)
app.command("tune")(tune_cmd)
app.command("deploy")(deploy_cmd)
app.command("rollback")(rollback_cmd)
app.add_typer(board_app, name="board")
app.add_typer(service_app, name="service")


def _version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """edgekd: data -> teacher -> distilled student -> ONNX bundle -> streaming runtime."""


@app.command("models")
def models_cmd() -> None:
    """List the architectures in the registry (students and teacher)."""
    from edgekd.train.catalog import CATALOG

    for a in CATALOG.values():
        print(f"{a.name:15s} {a.role:8s} {a.task:4s} {a.summary}")


@app.command("demo")
@friendly_errors
def demo_cmd(
    out: Annotated[Path, typer.Option(help="Folder for data, checkpoints, bundles and report.md.")] = Path("runs/demo"),
    per_word: Annotated[int, typer.Option(min=1, help="Synthesized utterances per keyword (twice as many _unknown_ words).")] = 400,
    teacher_epochs: Annotated[int, typer.Option(min=1, help="CNN teacher epochs.")] = 4,
    se_teacher_epochs: Annotated[int, typer.Option(min=1, help="Epochs of the speech-embedding teacher's head (on the frozen "
                                                               "backbone's cached frames: seconds each).")] = 20,
    student_epochs: Annotated[int, typer.Option(min=1, help="Student epochs.")] = 5,
    threads: Annotated[int, typer.Option(min=1, max=64, help="torch threads.")] = 2,
    engines: Annotated[Optional[str], typer.Option(help="Voice engines and weights for the data (default: every installed one, "
                                                        "weighted kokoro:1,piper:1,espeak:3,flite:1,festival:1 to fit the time "
                                                        "budget; Kokoro is the slow one).")] = None,
    rooms: Annotated[bool, typer.Option(help="Simulated rooms, real background recordings and clipping in augmentation.")] = True,
    realdev: Annotated[Optional[Path], typer.Option(help="Also score the teachers and bundles on real speech in Speech Commands layout "
                                                         "(measurement only).")] = None,
) -> None:
    """Run the whole path on synthesized data: data, two teachers (a CNN on log-mels and a head on the frozen speech
    embedding, which has heard people; the latter needs the oww extra), a student distilled from both and one without
    a teacher, export (fp32, QAT and PTQ int8, TFLite), eval, stream a WAV; --realdev adds real-speech accuracy."""
    from edgekd.cli.data import voice_options
    from edgekd.recipes.demo import DemoConfig, demo_engines, run_demo

    run_demo(out, DemoConfig(per_word=per_word, unknown=2 * per_word, silence=max(1, per_word * 4 // 5),
                             teacher_epochs=teacher_epochs, se_teacher_epochs=se_teacher_epochs, student_epochs=student_epochs, threads=threads,
                             engines=voice_options(engines, None) if engines else demo_engines(), rooms=rooms,
                             realdev=str(realdev) if realdev else ""))


def _plain_metavars(command: Any) -> None:
    """Help reads `edgekd run [OPTIONS] BUNDLE` and a flag shows no `<bool>` value column (typer's defaults)."""
    for param in getattr(command, "params", []):
        if param.metavar is None and getattr(param, "is_flag", False):
            param.metavar = ""
        elif param.metavar is None and param.param_type_name == "argument" and param.name:
            param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
            usage = param.metavar if param.required else f"[{param.metavar}]"
            param._usage_display_name = lambda usage=usage: usage  # typer 0.29 writes a required one as {name}
    original = command.get_help_option

    def help_option(ctx: Any, original: Any = original) -> Any:  # --help is made per call, outside ``params``
        opt = original(ctx)
        if opt is not None:
            opt.metavar = ""
        return opt

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)


def main() -> None:
    """The console entry point: usage errors (an unknown option, a value out of range) are one line on stderr and
    exit 2, as every other user error is; typer's framed box is kept for ``--help`` only."""
    import sys

    command = typer.main.get_command(app)
    _plain_metavars(command)
    try:
        rc = command.main(prog_name="edgekd", standalone_mode=False)
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # click's usage errors (typer may vendor click, so matched by what they carry)
        code, fmt = getattr(e, "exit_code", None), getattr(e, "format_message", None)
        if not isinstance(code, int) or fmt is None:
            raise
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        print(f"error: {fmt()}{hint}", file=sys.stderr)
        sys.exit(code)
    sys.exit(rc if isinstance(rc, int) else 0)
