"""`edgekd demo` on tiny material: both teachers, their ensemble and both students side by side, with the real-speech
column filled from a Speech Commands-layout folder (here the tiny synthesized set itself: the code path, not a number)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest


def test_demo_sets_teachers_ensemble_and_students_side_by_side(tiny_data: Path, tmp_path: Path) -> None:
    from edgekd.recipes.demo import DemoConfig, run_demo
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.evaluate import checkpoint_accuracy

    out = tmp_path / "demo"
    shutil.copytree(tiny_data, out / "data")  # a finished dataset is reused: no synthesis here
    cfg = DemoConfig(per_word=8, unknown=16, silence=8, views=1, teacher_epochs=1, se_teacher_epochs=1, student_epochs=1, qat_epochs=1,
                     threads=1, engines=(("espeak", 1.0),), rooms=False, realdev=str(tiny_data))
    report = json.loads(run_demo(out, cfg).with_suffix(".json").read_text())
    rows = report["results"]
    assert list(rows) == ["teacher (cnn-teacher)", "teacher (speech-embedding head)", "both teachers (what the student distils from)",
                          "dscnn distilled (KD from both teachers)", "dscnn no teacher"]
    assert all(0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["realdev_accuracy"] <= 1.0 for r in rows.values())
    # the distilled student and its QAT learnt the mean of both teachers; the plain one none
    se, cnn = out / "se-teacher.pt", out / "teacher.pt"
    kd, qat, ce = (Checkpoint.load(out / f"dscnn-{t}.pt").provenance for t in ("kd", "kd-qat", "ce"))
    assert {m["name"] for m in kd["teachers"]} == {se.name, cnn.name} and kd["teacher_combination"] == "mean of the members' logits"
    assert qat["qat_teacher"] == kd["teacher"] and "teacher" not in ce
    # the ensemble's real-speech number is the mean-logit accuracy of the two checkpoints on that folder
    assert report["realdev_accuracy"]["both teachers (what the student distils from)"] == checkpoint_accuracy([se, cnn], tiny_data)
    assert {"kd", "ce", "qat", "ptq"} <= set(report["realdev_accuracy"])
    md = (out / "report.md").read_text()
    assert "| teacher (speech-embedding head) |" in md and "Distillation vs the same student without a teacher" in md


def test_ensemble_accuracy_is_the_mean_of_logits() -> None:
    from edgekd.core.errors import ConfigError
    from edgekd.train.evaluate import ensemble_accuracy

    y = np.array([0, 1, 2])
    a = np.array([[3.0, 0, 0], [0, 0, 1], [0, 0, 1]])  # right (sure), wrong (unsure), right
    b = np.array([[0.0, 1, 0], [0, 3, 0], [0, 0, 1]])  # wrong (unsure), right (sure), right
    assert ensemble_accuracy([(a, y)]) == pytest.approx(2 / 3) and ensemble_accuracy([(b, y)]) == pytest.approx(2 / 3)
    assert ensemble_accuracy([(a, y), (b, y)]) == 1.0  # each sure one outvotes the other's unsure mistake
    assert ensemble_accuracy([(a, y), (10 * b, y)]) == pytest.approx(2 / 3)  # logits, not votes: b now wins row 0 too
    with pytest.raises(ConfigError, match="do not share their labels"):
        ensemble_accuracy([(a, y), (b, y[::-1])], ["x.pt", "y.pt"])
