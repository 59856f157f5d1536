"""The wake-word recipe end to end, shared by ``edgekd train wakeword`` and ``bench/wakeword.py``: a teacher that
scores raw audio (``OnnxTeacher``, e.g. ``oww:hey_jarvis``) labels every training clip and an unlabelled transfer
set of running speech -> a KWS student distilled from those scores (soft-target BCE through ``prob_logits`` plus
the hard labels) -> QAT int8 on the same targets -> ONNX bundles.

Labels are ``(phrase label, _unknown_, _silence_)``: the clip folder of the phrase is the keyword, every other
word folder (confusables and ordinary words) is ``_unknown_``. Every step's result is saved under ``out``
(``teacher-targets.npz``, ``student-distilled.pt``, ``student-distilled-qat.pt``, ``student-no_teacher.pt``,
``bundle-*``) and reused on a rerun; delete a file to redo that step. The targets file is keyed by the training
clips and the transfer audio, so new material is scored again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.data import SILENCE, UNKNOWN

__all__ = ["WakewordRecipe", "TeacherTargets", "wakeword_labels", "phrase_label", "teacher_targets", "train_wakeword_students", "run_wakeword"]

LICENCE_NOTE = "distilled from a CC BY-NC-SA 4.0 openWakeWord head: do not redistribute"


@dataclass(frozen=True)
class WakewordRecipe:
    arch: str = "dscnn"
    epochs: int = 12
    qat_epochs: int = 2  # 0: no int8 student
    alpha: float = 0.7  # weight of the teacher's soft targets on labelled clips (transfer windows use them alone)
    views: int = 2  # augmented views of each training clip
    stride_ms: int = 80  # the teacher's hop: one score every 80 ms
    smooth_ms: int = 160
    threads: int = 2


@dataclass
class TeacherTargets:
    p_clip: np.ndarray  # the teacher's score of each training clip (see edgekd.train.wakeword)
    tx: np.ndarray  # features of the transfer windows
    tp: np.ndarray  # the teacher's score of each transfer window

    def summary(self, train: Any) -> dict[str, Any]:
        """Mean teacher score of the phrase clips and of the others (``train``: the training FeatureSet, phrase
        label first), and how many transfer windows the teacher calls the phrase."""
        clip_is_phrase = train.y[np.unique(train.clip, return_index=True)[1]] == 0
        return {"positive_clips_mean_score": float(self.p_clip[clip_is_phrase].mean()) if clip_is_phrase.any() else None,
                "negative_clips_mean_score": float(self.p_clip[~clip_is_phrase].mean()) if (~clip_is_phrase).any() else None,
                "transfer_windows": int(self.tx.shape[0]), "transfer_windows_over_0.5": int((self.tp > 0.5).sum())}


def phrase_label(clips_dir: Path) -> str:
    """The phrase's folder name from ``synth_meta.json`` of an ``edgekd data synth-wakeword`` clip set."""
    from edgekd.core.errors import DataError

    meta = clips_dir / "synth_meta.json"
    if not meta.is_file():
        raise DataError(f"{meta}: missing; make the material with `edgekd data synth-wakeword DIR` (or give --label)")
    keywords = json.loads(meta.read_text(encoding="utf-8"))["config"]["keywords"]
    if len(keywords) != 1:
        raise DataError(f"{meta}: {len(keywords)} keywords; a wake-word clip set has exactly one phrase (give --label)")
    return str(keywords[0]).replace(" ", "_")


def wakeword_labels(label: str) -> tuple[str, str, str]:
    return (label, UNKNOWN, SILENCE)


def teacher_targets(spec: str, data: Any, transfer: list[np.ndarray], cache: Path, *, workers: int = 2,
                    progress: bool = True) -> TeacherTargets:
    """The teacher's scores of ``data``'s training clips and of 1 s windows of each transfer recording, cached in
    ``cache`` under a key of the clips, the transfer audio and the teacher's identity."""
    from edgekd.core.fsutil import atomic_write
    from edgekd.data.speech_commands import SpeechCommands
    from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
    from edgekd.train.teachers.oww import OnnxTeacher
    from edgekd.train.wakeword import clip_targets, transfer_windows

    teacher = OnnxTeacher(spec)
    h = hashlib.sha256(f"{teacher.identity}|{data.train.key}".encode())
    for x in transfer:
        h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    key = h.hexdigest()[:16]
    if cache.is_file():
        z = np.load(cache)
        if str(z["key"]) == key:
            return TeacherTargets(z["p_clip"], z["tx"], z["tp"])
    clips = SpeechCommands(data.root).clips(data.train.labels, "train", sample_rate=16000, seed=0)
    bar = None
    if progress:
        from edgekd.core.progress import Progress

        bar = Progress("teacher scores", len(clips), "clip")
    p_clip = clip_targets(spec, clips, workers=workers, progress=(lambda i, n: bar.update(1)) if bar is not None else None)
    if bar is not None:
        bar.close()
    frontend = LogMelFrontend(FrontendParams())
    parts = [transfer_windows(teacher, x, frontend) for x in transfer if x.shape[0] >= 16000]
    n_mels = data.train.x.shape[-1]
    tx = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, data.train.x.shape[1], n_mels), np.float16)
    tp = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, key=np.asarray(key), p_clip=p_clip, tx=tx, tp=tp)

    atomic_write(cache, write)
    return TeacherTargets(p_clip, tx, tp)


def train_wakeword_students(data: Any, targets: TeacherTargets, out: Path, recipe: WakewordRecipe, *, teacher_spec: str,
                            teacher_identity: str, baseline: bool = True, extra_strides_ms: tuple[int, ...] = (),
                            name_prefix: str = "wakeword") -> dict[str, Path]:
    """Train (or reuse) the distilled student, its QAT int8 version and optionally the no-teacher baseline; export
    each as a bundle. ``extra_strides_ms``: also the distilled model run every that many ms, one bundle each (no
    smoothing). Returns name -> bundle."""
    from edgekd.core.errors import ConfigError
    from edgekd.export.onnx import export_onnx
    from edgekd.train.config import TrainConfig
    from edgekd.train.pipeline import train_kws, train_qat
    from edgekd.train.wakeword import prob_logits, with_transfer

    labels = data.train.labels
    if labels[1:] != (UNKNOWN, SILENCE):
        raise ConfigError(f"wake-word labels must be wakeword_labels(phrase), got {labels}")
    logits = prob_logits(np.concatenate([targets.p_clip[data.train.clip], targets.tp]), 0, len(labels))  # 0: the phrase
    distil_data = type(data)(data.root, with_transfer(data.train, targets.tx), data.validation, data.test, data.views)
    provenance = {"teacher": teacher_spec, "teacher_sha256": teacher_identity}
    if teacher_spec.startswith("oww:"):
        provenance["licence"] = LICENCE_NOTE
    pp = {"stride_ms": recipe.stride_ms, "smooth_ms": recipe.smooth_ms}
    out.mkdir(parents=True, exist_ok=True)
    bundles: dict[str, Path] = {}

    def bundle(ckpt: Path, name: str, int8: bool = False, postprocess: dict[str, int] = pp) -> Path:
        b = out / f"bundle-{name}"
        if not (b / "manifest.json").is_file():
            export_onnx(ckpt, b, name=f"{name_prefix}-{recipe.arch}-{name}", int8=int8, postprocess=postprocess)
        return b

    ckpt = out / "student-distilled.pt"
    if not ckpt.is_file():
        cfg = TrainConfig(arch=recipe.arch, epochs=recipe.epochs, threads=recipe.threads, alpha=recipe.alpha, temperature=1.0)
        train_kws(distil_data, ckpt, cfg, soft_targets=logits, extra_provenance=provenance)
    bundles["distilled"] = bundle(ckpt, "distilled")
    for stride in extra_strides_ms:  # the same model run less often: what the stride alone costs in FRR and saves in CPU
        bundles[f"distilled, {stride} ms stride"] = bundle(ckpt, f"distilled-stride{stride}", postprocess={"stride_ms": stride, "smooth_ms": stride})
    if recipe.qat_epochs:
        q_ckpt = out / "student-distilled-qat.pt"
        if not q_ckpt.is_file():
            train_qat(distil_data, ckpt, q_ckpt, epochs=recipe.qat_epochs, threads=recipe.threads, soft_targets=logits)
        bundles["distilled QAT int8"] = bundle(q_ckpt, "distilled-int8", int8=True)
    if baseline:
        b_ckpt = out / "student-no_teacher.pt"
        if not b_ckpt.is_file():
            train_kws(data, b_ckpt, TrainConfig(arch=recipe.arch, epochs=recipe.epochs, threads=recipe.threads, alpha=0.0, temperature=1.0))
        bundles["no_teacher"] = bundle(b_ckpt, "no_teacher")
    return bundles


def run_wakeword(data: Path, out: Path, teacher: str, recipe: WakewordRecipe, *, label: str | None = None, baseline: bool = False,
                 say: Callable[[str], None] = print) -> dict[str, Any]:
    """``edgekd train wakeword``: ``data/clips`` (an ``edgekd data synth-wakeword`` set) and ``data/transfer*.wav``
    scored by ``teacher``, students trained and exported under ``out``, ``out/report.json`` written; returns the report."""
    from edgekd.bench.machine import provenance
    from edgekd.core.errors import DataError
    from edgekd.core.fsutil import write_json
    from edgekd.core.units import SAMPLE_RATE
    from edgekd.runtime.wav import load_audio
    from edgekd.train.pipeline import load_kws_data
    from edgekd.train.teachers.oww import OnnxTeacher

    clips = data / "clips"
    if not clips.is_dir():
        raise DataError(f"{clips}: missing; make the material with `edgekd data synth-wakeword {data}`")
    label = label or phrase_label(clips)
    t = OnnxTeacher(teacher)  # a bad spec or a missing extra fails here, before any feature is computed
    transfer_files = sorted(data.glob("transfer*.wav"))
    if not transfer_files:
        say(f"{data}: no transfer*.wav; the student learns from the teacher's scores of the clips alone")
    kd = load_kws_data(clips, labels=wakeword_labels(label), views=recipe.views, cache_dir=out / "cache", workers=recipe.threads)
    targets = teacher_targets(teacher, kd, [load_audio(f, SAMPLE_RATE) for f in transfer_files], out / "teacher-targets.npz",
                              workers=recipe.threads)
    bundles = train_wakeword_students(kd, targets, out, recipe, teacher_spec=teacher, teacher_identity=t.identity, baseline=baseline,
                                      name_prefix=label.replace("_", "-"))
    report = {"data": str(data), "label": label, "teacher": teacher, "teacher_sha256": t.identity, "recipe": asdict(recipe),
              "transfer_files": [f.name for f in transfer_files], "teacher_on_training": targets.summary(kd.train),
              "bundles": {k: str(v) for k, v in bundles.items()},
              "provenance": provenance(f"wake-word students of {label!r} distilled from {teacher}")}
    write_json(out / "report.json", report)
    return report
