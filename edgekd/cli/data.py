"""``edgekd data``: make datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgekd.cli.common import friendly_errors, notice

app = typer.Typer(help="Make datasets (the embedded synthesizer).", no_args_is_help=True)


def _bar_progress(bar: Any) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that drives a tqdm bar (tqdm throttles the redraws)."""

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return progress


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
        counts = synth_kws(out, cfg, progress=_bar_progress(bar))
    notice(f"wrote {sum(counts.values())} clips in {len(counts)} folders to {out}")


@app.command("synth-wakeword")
@friendly_errors
def synth_wakeword_cmd(
    out: Annotated[Path, typer.Argument(help="New folder to write: clips/, transfer.wav, eval/.")],
    phrase: Annotated[str, typer.Option(help="The wake phrase (espeak-ng must be able to say it).")] = "hey jarvis",
    per_word: Annotated[int, typer.Option(help="Clips of the phrase in clips/ (confusables and other words: twice that).")] = 500,
    transfer_minutes: Annotated[float, typer.Option(help="Minutes of unlabelled running speech (train voices) for the teacher to label.")] = 20.0,
    positives: Annotated[int, typer.Option(help="Held-out positive files (test voices) for eval-stream; half as many each by flite and by festival.")] = 200,
    negative_minutes: Annotated[float, typer.Option(help="Minutes of held-out running speech with confusable phrases.")] = 60.0,
    ordinary_minutes: Annotated[float, typer.Option(help="Minutes of held-out running speech without confusables (0: none).")] = 0.0,
    flite_train_clips: Annotated[int, typer.Option(help="Also clips of the phrase by flite's training voices (awb, slt, kal16).")] = 0,
    flite_negative_clips: Annotated[int, typer.Option(help="Also clips of confusables and other words by flite's training voices.")] = 0,
    flite_transfer_minutes: Annotated[float, typer.Option(help="Also transfer_flite.wav: running speech by flite's training voices.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed (also decides which voices are held out).")] = 0,
    workers: Annotated[int, typer.Option(help="Synthesis processes for clips/.")] = 2,
) -> None:
    """Wake-word material with espeak-ng (and flite/festival where installed): clips/ (Speech Commands layout: the
    phrase, confusables such as "hey travis" and "jarvis" plus other words as _unknown_, noise as _silence_; voices
    split train/validation/test; --flite-* adds a second engine's training voices), transfer.wav (running speech
    by train voices, for distillation), and held-out eval material: eval/positives/ + eval/positives.tsv (test
    voices), eval/positives_flite/ + tsv (flite's held-out voice), eval/positives_festival/ + tsv (an engine never
    trained on), eval/negatives.wav (running speech with confusables; the confusable list is made for
    "hey jarvis") and optionally eval/ordinary.wav. Train on it with `edgekd train wakeword OUT`."""
    import shutil

    from tqdm import tqdm

    from edgekd.data.synth_kws import synth_kws
    from edgekd.data.synth_wakeword import engine_clips, positive_files, speech_stream, wakeword_config
    from edgekd.errors import ConfigError
    from edgekd.runtime.wav import write_wav

    if per_word < 1 or positives < 2 or workers < 1 or min(transfer_minutes, negative_minutes) <= 0 or ordinary_minutes < 0:
        raise ConfigError("--per-word and --workers must be >= 1, --positives >= 2, --transfer-minutes and --negative-minutes > 0")
    if min(flite_train_clips, flite_negative_clips, flite_transfer_minutes) < 0:
        raise ConfigError("--flite-train-clips, --flite-negative-clips and --flite-transfer-minutes must be >= 0")
    flite_training = flite_train_clips or flite_negative_clips or flite_transfer_minutes
    if flite_training and shutil.which("flite") is None:
        raise ConfigError("--flite-* needs flite (apt install flite); nothing was written")
    if not phrase.strip() or any(c in phrase for c in "\t\n"):
        raise ConfigError("--phrase must be a non-empty line of words")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: folder is not empty; give a new folder (nothing was overwritten)")
    label = "_".join(phrase.lower().split())
    if shutil.which("flite") is None:
        notice("flite is not installed (apt install flite): no eval/positives_flite")
    with tqdm(total=0, desc="clips", unit="clip", dynamic_ncols=True) as bar:
        synth_kws(out / "clips", wakeword_config(phrase=phrase, per_word=per_word, seed=seed, workers=workers), progress=_bar_progress(bar))
    if flite_train_clips or flite_negative_clips:
        notice(f"clips/: {flite_train_clips} phrase and {flite_negative_clips} confusable/word clips by flite's training voices")
        engine_clips(out / "clips", flite_train_clips, engine="flite", words=(phrase,), seed=seed + 71)
        engine_clips(out / "clips", flite_negative_clips, engine="flite", words=wakeword_config(phrase=phrase).other_words, seed=seed + 73)
    notice(f"transfer.wav: {transfer_minutes:g} min of running speech (train voices)")
    write_wav(out / "transfer.wav", speech_stream(60 * transfer_minutes, split="train", seed=seed + 11, phrase=phrase), 16000)
    if flite_transfer_minutes:
        notice(f"transfer_flite.wav: {flite_transfer_minutes:g} min of running speech (flite's training voices)")
        write_wav(out / "transfer_flite.wav", speech_stream(60 * flite_transfer_minutes, split="train", seed=seed + 13, phrase=phrase,
                                                            engine="flite"), 16000)
    notice(f"eval/: {positives} positives (test voices), negatives.wav ({negative_minutes:g} min with confusables)")
    positive_files(out / "eval" / "positives", positives, phrase=phrase, label=label, split="test", seed=seed + 21)
    write_wav(out / "eval" / "negatives.wav", speech_stream(60 * negative_minutes, split="test", seed=seed + 31, phrase=phrase,
                                                           confusable_rate=0.15), 16000)
    if ordinary_minutes:
        write_wav(out / "eval" / "ordinary.wav", speech_stream(60 * ordinary_minutes, split="test", seed=seed + 51, phrase=phrase,
                                                               confusable_rate=0.0), 16000)
    if shutil.which("flite") is not None:
        positive_files(out / "eval" / "positives_flite", positives // 2, phrase=phrase, label=label, engine="flite", seed=seed + 41)
    if shutil.which("text2wave") is not None:
        positive_files(out / "eval" / "positives_festival", positives // 2, phrase=phrase, label=label, engine="festival", seed=seed + 61)
    notice(f"wrote {out}: score with `edgekd eval-stream BUNDLE|--teacher oww:NAME --positives {out / 'eval' / 'positives'} "
           f"--annotations {out / 'eval' / 'positives.tsv'} --negatives {out / 'eval' / 'negatives.wav'}`")


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
