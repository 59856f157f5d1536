"""``edgekd data``: make datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli.common import friendly_errors, notice

app = typer.Typer(help="Make datasets (the embedded synthesizer).", no_args_is_help=True)


@app.command("synth-kws")
@friendly_errors
def synth_kws_cmd(
    out: Annotated[Path, typer.Argument(help="New folder to write (Speech Commands layout).")],
    per_word: Annotated[int, typer.Option(help="Utterances per keyword.")] = 1000,
    unknown: Annotated[int, typer.Option(help="Utterances of other words, for _unknown_.")] = 2000,
    silence: Annotated[int, typer.Option(help="Noise clips, for _silence_.")] = 800,
    seed: Annotated[int, typer.Option(help="Random seed (also decides which voices are held out).")] = 0,
    workers: Annotated[int, typer.Option(help="Synthesis processes.")] = 2,
) -> None:
    """Synthesize a keyword dataset with espeak-ng: 10 keywords + _unknown_ + _silence_.

    Voices: 8 English accents x ~100 voice variants x rate x pitch. Variants are split between
    train / validation / test (validation_list.txt, testing_list.txt), so test speakers are unseen.
    """
    from tqdm import tqdm

    from edgekd.data.synth_kws import SynthKwsConfig, synth_kws
    from edgekd.errors import ConfigError

    if min(per_word, unknown, silence) < 1 or workers < 1:
        raise ConfigError("--per-word, --unknown, --silence and --workers must be >= 1")
    cfg = SynthKwsConfig(per_word=per_word, unknown_total=unknown, silence_total=silence, seed=seed, workers=workers)
    with tqdm(total=0, desc="synthesize", unit="clip", dynamic_ncols=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)  # tqdm throttles the redraws

        counts = synth_kws(out, cfg, progress=progress)
    notice(f"wrote {sum(counts.values())} clips in {len(counts)} folders to {out}")
