"""``edgekd train``: teacher and student training."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from edgekd.cli.common import fraction, friendly_errors, nonneg, notice, positive, unit, within
from edgekd.runtime.manifest import MAX_LOOKBACK_MS, MAX_PEAK_POWER
from edgekd.train.catalog import arch_names
from edgekd.train.config import OPTION_BOUNDS

if TYPE_CHECKING:
    from edgekd.recipes.kws import KwsRun

app = typer.Typer(help="Train a teacher, or a student with or without distillation.", no_args_is_help=True)

DataOpt = Annotated[Path, typer.Option("--data", help="Speech Commands-layout folder with split lists.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Checkpoint file to write.")]
EpochsOpt = Annotated[int, typer.Option(min=1, help="Passes over the augmented training views.")]
ViewsOpt = Annotated[int, typer.Option(min=1, max=64, help="Augmented views per training clip (computed once, cached).")]
RoomsOpt = Annotated[bool, typer.Option(help="Training views also go through simulated rooms (cached RIR bank), real background "
                                             "recordings and clipping.")]
SeedOpt = Annotated[int, typer.Option(min=0, help="Random seed.")]
ThreadsOpt = Annotated[int, typer.Option(min=1, max=64, help="torch threads (per process under torchrun).")]
BatchOpt = Annotated[int, typer.Option(min=1, help="Global batch size (split evenly over torchrun processes).")]
CacheOpt = Annotated[Path, typer.Option(help="Where feature and teacher-logit caches go (a shared file system under torchrun).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the interrupted run saved in OUT.state (model, optimizer, "
                                         "scheduler, sampler position, RNG), to the same step count.")]
SaveEveryOpt = Annotated[int, typer.Option(min=0, help="Also save OUT.state every this many steps (it is always saved at each epoch's end).")]
TeacherCacheOpt = Annotated[Optional[Path], typer.Option(help="A teacher-logit cache from `edgekd teacher cache` (checked against "
                                                          "--teacher when both are given).")]


def _check_inputs(**paths: Optional[Path] | list[Path]) -> None:
    """Refuse a named input file that is not there before any data is read (one line)."""
    from edgekd.core.errors import ConfigError

    for name, given in paths.items():
        for path in given if isinstance(given, list) else [given]:
            if path is not None and not path.is_file():
                raise ConfigError(f"--{name.replace('_', '-')} {path}: no such file")


def _run(data: Path, out: Path, views: int, rooms: bool, cache_dir: Path, resume: bool = False, save_every: int = 0) -> KwsRun:
    from edgekd.recipes.kws import KwsRun

    return KwsRun(data, out, views=views, rooms=rooms, cache_dir=cache_dir, resume=resume, save_every=save_every, say=notice)


@app.command("teacher")
@friendly_errors
def teacher_cmd(
    data: DataOpt,
    out: OutOpt,
    arch: Annotated[str, typer.Option(help=f"Teacher architecture on log-mels: {', '.join(a for a in arch_names('teacher') if a != 'speech-embedding')} "
                                           "(see `edgekd models`).")] = "cnn-teacher",
    backbone: Annotated[str, typer.Option(help="none: train --arch from scratch on log-mels; speech-embedding: an MLP head on the "
                                               "frozen speech embedding (needs the oww extra), with --folds cross-fitting heads.")] = "none",
    folds: Annotated[int, typer.Option(min=0, max=10, help="speech-embedding: extra heads, each trained without one fold of the "
                                                         "clips, that label the clips they never saw for students (0 = off).")] = 2,
    hidden: Annotated[int, typer.Option(min=8, max=4096, help="speech-embedding: hidden units of the head.")] = 256,
    epochs: EpochsOpt = 5,
    views: ViewsOpt = 3,
    rooms: RoomsOpt = True,
    lr: Annotated[float, typer.Option(callback=positive, help="Peak learning rate.")] = 3e-3,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 2,
    cache_dir: CacheOpt = Path(".edgekd-cache"),
    batch_size: BatchOpt = 128,
    resume: ResumeOpt = False,
    save_every: SaveEveryOpt = 0,
) -> None:
    """Train the teacher (label smoothing 0.1, augmented views): --arch from scratch on log-mels (SpecAugment), or
    --backbone speech-embedding, a head on a frozen embedding pretrained on real speech, trained on the embedding
    of the same augmented views the students hear. Runs unchanged under torchrun (DDP)."""
    from edgekd.core.errors import ConfigError
    from edgekd.train.config import TrainConfig

    if backbone not in ("none", "speech-embedding"):
        raise ConfigError(f"--backbone {backbone!r}: choose none or speech-embedding")
    if arch == "speech-embedding":
        backbone = "speech-embedding"
    cfg = TrainConfig(arch=arch, epochs=epochs, lr=lr, seed=seed, threads=threads, alpha=0.0, label_smoothing=0.1, batch_size=batch_size)
    if backbone == "speech-embedding" and folds == 1:
        raise ConfigError("--folds must be 0 (no cross-fitting) or at least 2")
    if backbone == "speech-embedding" and resume:
        raise ConfigError("--resume is for long runs; the speech-embedding head trains in minutes: run it again without --resume")
    from edgekd.recipes.kws import train_teacher_run

    train_teacher_run(_run(data, out, views, rooms, cache_dir, resume, save_every), cfg, backbone=backbone, folds=folds, hidden=hidden)


@app.command("student")
@friendly_errors
def student_cmd(
    data: DataOpt,
    out: OutOpt,
    teacher: Annotated[Optional[list[Path]], typer.Option(metavar="CKPT", help="Teacher checkpoint to distil from (logits cached once). Repeat it "
                                                              "for an ensemble: the students learn the mean of the teachers' logits.")] = None,
    teacher_cache: TeacherCacheOpt = None,
    no_teacher: Annotated[bool, typer.Option("--no-teacher", help="Train the same student on hard labels only (the baseline).")] = False,
    arch: Annotated[str, typer.Option(help=f"Student architecture: {', '.join(arch_names('student'))} (see `edgekd models`).")] = "dscnn",
    alpha: Annotated[float, typer.Option(callback=unit, help="Weight of the distillation term.")] = 0.7,
    temperature: Annotated[float, typer.Option(callback=positive, help="Softmax temperature of the distillation term.")] = 3.0,
    feature_kd: Annotated[float, typer.Option(callback=nonneg, help="Weight of feature distillation: a projection of the student's "
                                                                    "pooled features regressed onto the speech embedding of the same "
                                                                    "view (needs the oww extra; 0 = off).")] = 0.0,
    transfer: Annotated[Optional[Path], typer.Option(help="A transfer set from `edgekd data transfer`: unlabelled windows the "
                                                          "teacher labels, learnt with the distillation term only.")] = None,
    freq_warp: Annotated[float, typer.Option(callback=within(OPTION_BOUNDS["freq_warp"]), help="Frequency warping of each training window: its mel "
                                                                                   "axis scaled by a factor drawn from [1 - W, 1 + W], a "
                                                                                   "vocal-tract change (0 = off).")] = 0.0,
    eq_db: Annotated[float, typer.Option(callback=within(OPTION_BOUNDS["eq_db"]), help="Random smooth EQ of each training window: three "
                                                                                "cosines across the mel bands, each within +-DB dB, "
                                                                                "a microphone's colouring (0 = off).")] = 0.0,
    ema: Annotated[float, typer.Option(callback=within(OPTION_BOUNDS["ema"]), help="Decay of an exponential moving average of the weights, "
                                                                             "validated and kept instead of the last iterate "
                                                                             "(e.g. 0.999; 0 = off).")] = 0.0,
    balance_labels: Annotated[bool, typer.Option("--balance-labels", help="Logit-adjusted loss: the model scores the labels as "
                                                                          "if each had as many training clips (a set with 3x "
                                                                          "more _unknown_ clips than clips per keyword otherwise "
                                                                          "answers _unknown_ readily when in doubt). QAT of the "
                                                                          "checkpoint keeps it.")] = False,
    epochs: EpochsOpt = 5,
    views: ViewsOpt = 3,
    rooms: RoomsOpt = True,
    subset: Annotated[float, typer.Option(callback=fraction, help="Train on this fraction of the training clips.")] = 1.0,
    lr: Annotated[float, typer.Option(callback=positive, help="Peak learning rate.")] = 3e-3,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 2,
    cache_dir: CacheOpt = Path(".edgekd-cache"),
    batch_size: BatchOpt = 128,
    resume: ResumeOpt = False,
    save_every: SaveEveryOpt = 0,
) -> None:
    """Train a student: distilled from --teacher (or a prebuilt --teacher-cache), or --no-teacher for the hard-label
    baseline. Runs unchanged under torchrun (DDP; same global batch, so the same steps as one process)."""
    from edgekd.core.errors import ConfigError
    from edgekd.train.catalog import CATALOG
    from edgekd.train.config import TrainConfig

    _check_inputs(teacher=teacher)
    from edgekd.train.teachers import check_teachers

    check_teachers(teacher)
    distil = bool(teacher) or teacher_cache is not None
    if distil == no_teacher:
        raise ConfigError("give --teacher CKPT (and/or --teacher-cache DIR) or --no-teacher")
    if arch in CATALOG and CATALOG[arch].role != "student":
        raise ConfigError(f"{arch} is a teacher architecture; use `edgekd train teacher`")
    cfg = TrainConfig(arch=arch, epochs=epochs, lr=lr, seed=seed, threads=threads, batch_size=batch_size,
                      alpha=alpha if distil else 0.0, temperature=temperature, feature_kd=feature_kd, freq_warp=freq_warp,
                      eq_db=eq_db, ema=ema, balance_labels=balance_labels)
    if transfer is not None and not (transfer / "transfer_meta.json").is_file():
        raise ConfigError(f"--transfer {transfer}: not a transfer set (no transfer_meta.json); make one with `edgekd data transfer`")
    from edgekd.recipes.kws import train_student_run

    train_student_run(_run(data, out, views, rooms, cache_dir, resume, save_every), cfg, teacher=teacher, teacher_cache=teacher_cache,
                      subset=subset, transfer=transfer)


@app.command("qat")
@friendly_errors
def qat_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Trained float student checkpoint.")],
    data: DataOpt,
    out: OutOpt,
    teacher: Annotated[Optional[list[Path]], typer.Option(metavar="CKPT", help="Keep distilling from this teacher during QAT (cached logits); "
                                                              "repeat it for an ensemble, as in `train student`.")] = None,
    teacher_cache: TeacherCacheOpt = None,
    epochs: Annotated[int, typer.Option(min=0, help="Fine-tuning epochs; 0 = none: the float weights as they are, the int8 "
                                                    "ranges observed over every training row.")] = 2,
    lr: Annotated[float, typer.Option(callback=positive, help="Peak learning rate (lower than float training).")] = 5e-4,
    views: ViewsOpt = 3,
    rooms: RoomsOpt = True,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 2,
    cache_dir: CacheOpt = Path(".edgekd-cache"),
    resume: ResumeOpt = False,
    save_every: SaveEveryOpt = 0,
    balance_labels: Annotated[bool, typer.Option("--balance-labels", help="Score the labels as if equally frequent: a student "
                                                                          "trained without --balance-labels gets the training "
                                                                          "labels' log prior taken off its classifier's bias, "
                                                                          "then fine-tunes with the logit-adjusted loss.")] = False,
) -> None:
    """Quantization-aware fine-tuning: BatchNorm folded, int8 per-channel weights, uint8 activations (EMA ranges).
    Runs unchanged under torchrun."""
    from edgekd.recipes.kws import train_qat_run

    _check_inputs(checkpoint=checkpoint, teacher=teacher)
    from edgekd.train.teachers import check_teachers

    check_teachers(teacher)
    train_qat_run(_run(data, out, views, rooms, cache_dir, resume, save_every), checkpoint, teacher=teacher, teacher_cache=teacher_cache,
                  epochs=epochs, lr=lr, seed=seed, threads=threads, balance_labels=balance_labels)


@app.command("balance")
@friendly_errors
def balance_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Trained float student checkpoint.")],
    data: DataOpt,
    out: OutOpt,
) -> None:
    """Score the labels as if equally frequent: the log of each label's share of the training clips of --data is taken
    off the student's classifier bias (post-hoc logit adjustment; a set with 3x more _unknown_ clips than clips per
    keyword otherwise answers _unknown_ readily when in doubt). No training; `train qat --balance-labels` does the same
    before its fine-tuning."""
    from edgekd.cli.common import check_writable
    from edgekd.core.errors import ConfigError
    from edgekd.data.speech_commands import SpeechCommands
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.pipeline import balanced_classifier

    _check_inputs(checkpoint=checkpoint)
    check_writable(out, "--out")
    src = Checkpoint.load(checkpoint)
    clips = SpeechCommands(data).clips(src.labels, "train")
    y = [src.labels.index(c.label) for c in clips]
    if not y:
        raise ConfigError(f"{data}: no training clips to count the labels of")
    bal = balanced_classifier(src, y, src.labels)
    bal.save(out)
    counts = {lab: y.count(i) for i, lab in enumerate(src.labels)}
    notice(f"saved {out}: classifier bias balanced over {len(y)} training clips ({', '.join(f'{k} {v}' for k, v in counts.items())})")


@app.command("sed")
@friendly_errors
def sed_cmd(
    data: Annotated[Path, typer.Argument(help="Soundscapes from `edgekd data synth-sed` (audio/<split>/ + <split>.tsv; audio/transfer/ "
                                              "is used for distillation when present).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the models, bundle-int8/, bundle-fp32/ and report.json.")],
    teacher_epochs: Annotated[int, typer.Option(min=1, help="Teacher (sed-crnn) epochs.")] = 20,
    student_epochs: Annotated[int, typer.Option(min=1, help="Distilled student (sed-causal-cnn) epochs.")] = 60,
    qat_epochs: Annotated[int, typer.Option(min=1, help="Quantization-aware fine-tuning epochs.")] = 6,
    alpha: Annotated[float, typer.Option(callback=unit, help="Weight of the distillation term on labelled soundscapes (transfer ones use it alone).")] = 0.5,
    temperature: Annotated[float, typer.Option(callback=positive, help="Sigmoid temperature of the distillation term.")] = 1.0,
    threads: ThreadsOpt = 2,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the model whose training was interrupted (OUT/<model>.pt.state, "
                                                          "saved at each epoch's end).")] = False,
) -> None:
    """Sound-event detection end to end: train the sed-crnn teacher, distil the causal sed-causal-cnn student
    (frame-level loss; transfer soundscapes labelled by the teacher alone), fine-tune it with QAT, tune each model's
    post-processing on the validation split, export OUT/bundle-int8 and OUT/bundle-fp32 (task sed) and score the
    test split (event/segment F1, PSDS1 with the psds extra) into OUT/report.json. Models already under OUT are
    reused: delete one to retrain it."""
    from edgekd.core.errors import ConfigError
    from edgekd.recipes.sed import SedRecipe, run_sed

    if min(teacher_epochs, student_epochs, qat_epochs) < 1 or not 0.0 <= alpha <= 1.0 or temperature <= 0:
        raise ConfigError("epochs must be >= 1, --alpha within [0, 1] and --temperature > 0")
    recipe = SedRecipe(teacher_epochs=teacher_epochs, student_epochs=student_epochs, qat_epochs=qat_epochs, alpha=alpha,
                       temperature=temperature, threads=threads, resume=resume)
    report = run_sed(data, out, recipe, say=notice)
    for name, r in report["models"].items():
        notice(f"{name}: event-F1 {r['event_f1']:.3f}, segment-F1 {r['segment_f1']:.3f}, {r['params']:,} params"
               + (f", bundle {r['bundle']} ({r['onnx_bytes']:,} B ONNX)" if "bundle" in r else ""))
    notice(f"-> {out / 'report.json'}")


@app.command("wakeword")
@friendly_errors
def wakeword_cmd(
    data: Annotated[Optional[Path], typer.Argument(help="With --teacher oww:NAME: material from `edgekd data synth-wakeword` (clips/ and "
                                                        "transfer*.wav). Not with --phrase, which makes its own.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for data/ (with --phrase), the models, the bundles and report.json.")] = Path("runs/wakeword"),
    phrase: Annotated[Optional[list[str]], typer.Option("--phrase", help="The wake phrase, from text alone; repeat it for a command set "
                                                                        "(labels: the phrases + _unknown_ + _silence_).")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="With DATA: oww:NAME (openWakeWord 0.4.0 head, the oww extra; CC BY-NC-SA). With "
                                                        "--phrase: speech-embedding (default), a head trained on the material.")] = None,
    label: Annotated[Optional[str], typer.Option(help="With DATA: the phrase's clip folder (default: the phrase in clips/synth_meta.json).")] = None,
    arch: Annotated[Optional[str], typer.Option(help=f"Student architecture: {', '.join(arch_names('student'))} (default: dscnn with DATA, "
                                                     "dscnn-stream-64 with --phrase).")] = None,
    epochs: EpochsOpt = 12,
    qat_epochs: Annotated[Optional[int], typer.Option(min=0, help="QAT int8 fine-tuning epochs on the same teacher targets. With DATA: "
                                                                  "default 2, 0 = no int8 bundle. With --phrase: default 0 = int8 "
                                                                  "without fine-tuning (ranges observed over the training rows).")] = None,
    alpha: Annotated[Optional[float], typer.Option(callback=unit, help="Weight of the teacher's soft targets on labelled clips (transfer "
                                                                       "windows: alone); default 0.7 with DATA, 0.8 with --phrase.")] = None,
    views: ViewsOpt = 2,
    baseline: Annotated[bool, typer.Option("--baseline", help="With DATA: also train the student on hard labels only (bundle-no_teacher/).")] = False,
    stride_ms: Annotated[int | None, typer.Option(min=10, help="Run the student every this many ms (default 160 with --phrase: half the "
                                                                 "CPU of 80, and the verifier's budget then buys a lower gate; 80 with "
                                                                 "--teacher oww:NAME, the teacher's hop).")] = None,
    per_word: Annotated[int, typer.Option(min=1, help="--phrase: clips of each phrase (confusables and other words: twice that).")] = 1000,
    speech_windows: Annotated[Optional[int], typer.Option(min=1, help="--phrase: one-second windows of running speech among the "
                                                                      "_unknown_ clips (default: --per-word).")] = None,
    engines: Annotated[Optional[str], typer.Option(help="--phrase: voice engines and weights, e.g. kokoro:3,espeak:3,piper (default: every "
                                                        "installed one).")] = None,
    target_fa_per_hour: Annotated[float, typer.Option(callback=positive, help="--phrase: the threshold is chosen for this many false "
                                                                              "accepts per hour on held-out validation speech.")] = 0.5,
    teacher_epochs: Annotated[int, typer.Option(min=1, help="--phrase: epochs of the speech-embedding teacher head (more fit the "
                                                            "synthesized voices, not people: 2 carried to real speakers better than 20).")] = 2,
    transfer_minutes: Annotated[float, typer.Option(callback=positive, help="--phrase: minutes of unlabelled transfer windows.")] = 20.0,
    phrase_windows: Annotated[int, typer.Option(min=0, help="--phrase: transfer windows made of each phrase's training clips (warped "
                                                            "wider than the training views, cut at the window's edges, some over "
                                                            "running speech), labelled by the teacher alone.")] = 0,
    confusable_clips: Annotated[Optional[int], typer.Option(min=0, help="--phrase: more clips of each confusable people say (partials, "
                                                                        "close words; not the one-letter edits) on top of its even share "
                                                                        "of the _unknown_ clips (default: --per-word / 5).")] = None,
    mining_minutes: Annotated[float, typer.Option(callback=nonneg, help="--phrase: minutes of running speech streamed for false-accept "
                                                                        "mining (0: no mining).")] = 20.0,
    mining_threshold: Annotated[float, typer.Option(help="--phrase: the first student's score at which a window of the mining speech "
                                                         "becomes a hard negative.")] = 0.5,
    validation_minutes: Annotated[float, typer.Option(callback=positive, help="--phrase: minutes of validation speech for the threshold "
                                                      "(one false accept in them is 60/minutes FA/h: 120 minutes count one at 0.5 FA/h; "
                                                      "fewer set the threshold above every validation false accept, with a warning).")] = 20.0,
    test_minutes: Annotated[float, typer.Option(callback=positive, help="--phrase: minutes of test speech for the report.")] = 60.0,
    positives: Annotated[int, typer.Option(min=1, help="--phrase: validation and test positives per phrase.")] = 100,
    feature_kd: Annotated[float, typer.Option(callback=nonneg, help="--phrase: weight of feature distillation (the students' pooled "
                                                                    "features regressed onto the teacher's speech embedding of the same "
                                                                    "window; 0 = off).")] = 0.0,
    verifier_budget: Annotated[float, typer.Option(callback=nonneg, help="--phrase: a head on the teacher's backbone becomes the "
                                                                         "bundle's second stage, asked where the student's score reaches "
                                                                         "a gate: the lowest gate with at most this many verifier calls "
                                                                         "per hour of validation speech (an opening asks at its 1st, 3rd "
                                                                         "and 5th inference at most and lasts two inferences after the "
                                                                         "score falls under the gate; smaller: a higher gate, less CPU; "
                                                                         "0: no verifier, the student alone).")] = 1000.0,
    gate_recall: Annotated[float, typer.Option(help="--phrase: the gate is at most the highest student score this share of the "
                                                    "validation positives reach, even if the verifier is then asked more often "
                                                    "than --verifier-budget (a warning says so; 0: the budget alone).")] = 0.98,
    gate_views: Annotated[int, typer.Option(min=0, max=64, help="--phrase: --gate-recall counts each validation positive as "
                                                               "heard in this many field views (a held-out simulated room, a "
                                                               "random microphone, noise at 5-25 dB SNR); 0: the clean "
                                                               "positives as synthesized.")] = 4,
    peak_power: Annotated[float, typer.Option(min=0.0, max=MAX_PEAK_POWER, help="--phrase: the verified score is the verifier's posterior "
                                                                     "times the opening's peak student score to this power "
                                                                     "(0: the verifier's posterior alone).")] = 0.25,
    verifier_lookback_ms: Annotated[int, typer.Option(min=0, max=MAX_LOOKBACK_MS, help="--phrase: an opening's first verifier call also "
                                                                         "scores the second that ended this many ms before it "
                                                                         "and keeps the higher score (one more verifier run per "
                                                                         "opening; 0: the last second alone).")] = 320,
    students: Annotated[int, typer.Option(min=1, max=8, help="--phrase: students in the bundle, trained alike from consecutive "
                                                           "seeds and merged into one graph whose output is their mean "
                                                           "posterior (the gate reads it; each one more costs one student's "
                                                           "training and its CPU at run time).")] = 1,
    verifier_epochs: Annotated[int, typer.Option(min=1, help="--phrase: epochs of the verifier's head (a second head on the teacher's "
                                                             "backbone, trained on the clips and on the windows of the mining speech "
                                                             "at which the gate of a 1000-call budget (or its own, if lower) asks it; with --mining-minutes 0, "
                                                             "the teacher itself "
                                                             "when equal to --teacher-epochs and --verifier-heads is 1).")] = 2,
    verifier_heads: Annotated[int, typer.Option(min=1, help="--phrase: the verifier's heads, trained on the same material from "
                                                            "consecutive seeds; it answers with their mean logit (the backbone, "
                                                            "most of a call's CPU, runs once whatever their number).")] = 3,
    train_seed: Annotated[Optional[int], typer.Option(min=0, help="--phrase: seed of the training draw (views, teacher head, "
                                                                  "students, int8 ranges, verifier) on the same material; default: "
                                                                  "the material's seed, 0. Another seed needs another --out.")] = None,
    rooms: RoomsOpt = True,
    threads: ThreadsOpt = 2,
) -> None:
    """A wake word end to end, two ways.

    From text (--phrase, any phrase, repeatable): synthesize the phrase with the voice bank, generate confusable
    negatives from its phonemes, train a speech-embedding teacher head on that material, distil a streaming student
    over transfer windows, mine its false accepts on running speech and train again, int8 (no fine-tuning unless
    --qat-epochs), give the bundle a verifier (a head on the teacher's backbone) as a second stage where the
    student's score opens a gate (--verifier-budget), choose the threshold
    for --target-fa-per-hour on held-out validation speech, report FRR at 0.5/1/2/5 FA/h on test speech
    (OUT/report.json, OUT/det.png, OUT/bundle/ with its model card). Every stage is saved under OUT and reused.

    From an openWakeWord head (DATA --teacher oww:NAME): the teacher scores every training clip and 1 s windows of
    the transfer speech, a student learns from those scores and the hard labels, QAT int8, bundles. A student of an
    openWakeWord head inherits its CC BY-NC-SA 4.0 licence."""
    from edgekd.core.errors import ConfigError

    if stride_ms is not None and stride_ms % 10:
        raise ConfigError("--stride-ms must be a multiple of 10")
    if phrase:
        stride_ms = 160 if stride_ms is None else stride_ms
        if data is not None:
            raise ConfigError("give --phrase (material made from text) or DATA (with --teacher oww:NAME), not both")
        if teacher not in (None, "speech-embedding"):
            raise ConfigError(f"--teacher {teacher!r} with --phrase: only speech-embedding; for an openWakeWord head make DATA with "
                              "`edgekd data synth-wakeword DIR --phrase ...` and run `edgekd train wakeword DIR --teacher oww:NAME`")
        _phrase_wakeword(out, tuple(phrase), arch or "dscnn-stream-64", epochs, qat_epochs, views, stride_ms, per_word, engines, target_fa_per_hour,
                         teacher_epochs, transfer_minutes, mining_minutes, validation_minutes, test_minutes, positives, rooms, threads,
                         alpha, feature_kd, speech_windows, phrase_windows, confusable_clips, mining_threshold, verifier_budget, verifier_epochs,
                         train_seed, verifier_heads, gate_recall, gate_views, peak_power, students, verifier_lookback_ms)
        return
    if data is None or teacher is None:
        raise ConfigError("give --phrase TEXT (a wake word from text), or DATA with --teacher oww:NAME")
    from edgekd.recipes.wakeword import WakewordRecipe, run_wakeword

    alpha = 0.7 if alpha is None else alpha
    qat_epochs = 2 if qat_epochs is None else qat_epochs
    stride_ms = 80 if stride_ms is None else stride_ms
    if epochs < 1 or qat_epochs < 0 or views < 1 or not 0.0 <= alpha <= 1.0:
        raise ConfigError("--epochs and --views must be >= 1, --qat-epochs >= 0, --alpha within [0, 1]")
    recipe = WakewordRecipe(arch=arch or "dscnn", epochs=epochs, qat_epochs=qat_epochs, alpha=alpha, views=views, threads=threads,
                            stride_ms=stride_ms, smooth_ms=max(160, stride_ms))
    report = run_wakeword(data, out, teacher, recipe, label=label, baseline=baseline, say=notice)
    for name, b in report["bundles"].items():
        notice(f"{name}: {b}")
    if teacher.startswith("oww:"):
        notice("these students are distilled from a CC BY-NC-SA 4.0 openWakeWord head: keep them out of anything you redistribute")
    notice(f"-> {out / 'report.json'}")


def _phrase_wakeword(out: Path, phrases: tuple[str, ...], arch: str, epochs: int, qat_epochs: int | None, views: int, stride_ms: int, per_word: int,
                     engines: str | None, target_fa_per_hour: float, teacher_epochs: int, transfer_minutes: float, mining_minutes: float,
                     validation_minutes: float, test_minutes: float, positives: int, rooms: bool, threads: int, alpha: float | None,
                     feature_kd: float, speech_windows: int | None = None, phrase_windows: int = 0,
                     confusable_clips: int | None = None, mining_threshold: float = 0.5, verifier_budget: float = 1000.0,
                     verifier_epochs: int = 2, train_seed: int | None = None, verifier_heads: int = 3,
                     gate_recall: float = 0.98, gate_views: int = 4, peak_power: float = 0.25, students: int = 1,
                     verifier_lookback_ms: int = 320) -> None:
    from edgekd.cli.common import check_writable
    from edgekd.cli.data import voice_options
    from edgekd.recipes.custom_wakeword import PhraseRecipe, check_recipe, run_phrase_wakeword

    recipe = PhraseRecipe(phrases=phrases, per_word=per_word, speech_windows=speech_windows, phrase_windows=phrase_windows,
                          confusable_clips=confusable_clips,
                          engines=voice_options(engines, None) if engines else None,
                          transfer_minutes=transfer_minutes, validation_minutes=validation_minutes, test_minutes=test_minutes,
                          mining_minutes=mining_minutes, mining_threshold=mining_threshold, positives=positives, arch=arch, epochs=epochs,
                          feature_kd=feature_kd, teacher_epochs=teacher_epochs, views=views, rooms=rooms,
                          target_fa_per_hour=target_fa_per_hour, stride_ms=stride_ms, threads=threads, workers=threads,
                          verifier_budget=verifier_budget, verifier_epochs=verifier_epochs, train_seed=train_seed,
                          verifier_heads=verifier_heads, gate_recall=gate_recall, gate_views=gate_views,
                          peak_power=peak_power, students=students, verifier_lookback_ms=verifier_lookback_ms,
                          **({} if alpha is None else {"alpha": alpha}), **({} if qat_epochs is None else {"qat_epochs": qat_epochs}))
    check_recipe(recipe)
    check_writable(out / "report.json", "--out")
    report = run_phrase_wakeword(out, recipe, say=notice)
    notice(f"bundle: {report['bundle']} -> {out / 'report.json'}, {out / 'det.png'}")
