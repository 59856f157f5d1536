"""``edgekd data``: make datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

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


@app.command("synth-sed")
@friendly_errors
def synth_sed_cmd(
    out: Annotated[Path, typer.Argument(help="New folder to write: audio/{train,validation,test}/ and {split}.tsv.")],
    train: Annotated[int, typer.Option(help="Training soundscapes (10 s each).")] = 400,
    validation: Annotated[int, typer.Option(help="Validation soundscapes.")] = 60,
    test: Annotated[int, typer.Option(help="Test soundscapes (events from recordings never used for training).")] = 120,
    transfer: Annotated[int, typer.Option(help="Unlabelled soundscapes from the training recordings (audio/transfer/, no tsv) that "
                                               "the teacher labels for distillation.")] = 0,
    esc50: Annotated[Optional[Path], typer.Option(help="Use ESC-50 (meta/esc50.csv + audio/) as the event source; fold 5 is unseen.")] = None,
    events: Annotated[Optional[Path], typer.Option(help="Use a folder per class of isolated recordings as the event source.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (also decides which recordings are held out).")] = 0,
) -> None:
    """Compose DESED-style soundscapes: events placed on backgrounds at random times and SNRs (0-20 dB), with
    overlaps, plus a DCASE tsv (filename onset offset event_label) per split. The default events are recordings
    Debian ships (sonic-pi-samples, sound-theme-freedesktop, sound-icons, gnome-audio) plus synthesized speech
    and beeps; each class's recordings are split so test soundscapes hold recordings the model never heard."""
    from tqdm import tqdm

    from edgekd.data.synth_sed import SynthSedConfig, esc50_sources, folder_sources, synth_sed
    from edgekd.errors import ConfigError

    if esc50 is not None and events is not None:
        raise ConfigError("give --esc50 or --events, not both")
    if min(train, validation, test) < 1 or transfer < 0:
        raise ConfigError("--train, --validation and --test must be >= 1 (--transfer >= 0)")
    sources = esc50_sources(esc50) if esc50 is not None else folder_sources(events, seed) if events is not None else None
    cfg = SynthSedConfig(scapes_train=train, scapes_validation=validation, scapes_test=test, scapes_transfer=transfer, seed=seed)
    with tqdm(total=train + validation + test + transfer, desc="soundscapes", unit="scape", dynamic_ncols=True) as bar:
        meta = synth_sed(out, cfg, progress=lambda done, total: bar.update(done - bar.n), sources=sources,
                         synthesized=("speech", "beep") if sources is None else ())
    notice(f"wrote {train + validation + test + transfer} soundscapes with {len(meta['labels'])} event classes to {out}")
