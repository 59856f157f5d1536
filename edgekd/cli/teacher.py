"""``edgekd teacher``: score a dataset once with a frozen teacher (the sharded teacher-logit cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli.common import friendly_errors, notice

app = typer.Typer(help="Work with teachers: score a dataset once into a sharded logit cache.", no_args_is_help=True)


@app.command("cache")
@friendly_errors
def cache_cmd(
    teacher: Annotated[Path, typer.Option("--teacher", help="Teacher checkpoint (from `edgekd train teacher`).")],
    data: Annotated[Path, typer.Option("--data", help="Speech Commands-layout folder with split lists.")],
    out: Annotated[Path, typer.Option("--out", help="Cache folder to write (index.json + shard-*.npy).")],
    views: Annotated[int, typer.Option(min=1, help="Augmented views per training clip: must match the students' --views.")] = 3,
    rooms: Annotated[bool, typer.Option(help="Rooms in the training views: must match the students' --rooms.")] = True,
    workers: Annotated[int, typer.Option(min=1, help="Shards scored in parallel processes (ignored under torchrun: one shard per rank).")] = 1,
    threads: Annotated[int, typer.Option(min=1, max=64, help="torch threads per process.")] = 1,
    cache_dir: Annotated[Path, typer.Option(help="Where the feature cache goes.")] = Path(".edgekd-cache"),
) -> None:
    """Score the training split (every augmented view) with TEACHER, in shards: one per torchrun rank, or one per
    --workers process. The index records the teacher's sha256, the frontend parameters and the data file list;
    `edgekd train student --teacher-cache OUT` reads it memory-mapped and refuses a cache that does not match."""
    from edgekd.runtime.frontend import FrontendParams
    from edgekd.train.dist import DistContext
    from edgekd.train.logit_cache import build_logit_cache
    from edgekd.train.pipeline import load_kws_data

    d = DistContext.from_env()
    try:
        with d.main_first():
            kd = load_kws_data(data, views=views, seed=0, cache_dir=cache_dir, progress=d.is_main, rooms=rooms)
        cache = build_logit_cache(teacher, kd.train, out, frontend=FrontendParams().to_dict(), workers=workers, threads=threads, dist=d,
                                  notice=notice if d.is_main else None)
    finally:
        d.close()
    if d.is_main:
        print(f"{out}: {len(cache)} rows x {cache.n_labels} labels, {len(cache.index['shards'])} shard(s)")


@app.command("score")
@friendly_errors
def score_cmd(
    wav: Annotated[Path, typer.Argument(help="16 kHz mono WAV (other rates are resampled).")],
    teacher: Annotated[str, typer.Option("--teacher", help="oww:NAME, an openWakeWord 0.4.0 head (needs the `oww` extra).")] = "oww:hey_jarvis",
    threads: Annotated[int, typer.Option(min=1, max=64, help="onnxruntime threads.")] = 1,
) -> None:
    """Print the teacher's score every 80 ms as `t_ms score` lines (t_ms: end of the chunk), exactly the numbers
    openwakeword's Model.predict gives for the same chunks."""
    from edgekd.runtime.wav import load_audio
    from edgekd.train.teachers.oww import CHUNK, OnnxTeacher

    t = OnnxTeacher(teacher, threads=threads)
    scores = t.scores(load_audio(wav, 16000))
    for i, s in enumerate(scores):
        print(f"{(i + 1) * CHUNK * 1000 // 16000} {s:.6f}")
    if len(scores):
        best = int(scores.argmax())
        notice(f"{wav}: {len(scores)} scores, max {scores[best]:.4f} at {(best + 1) * 80} ms ({teacher}, sha256 {t.identity[:12]}...)")
