"""The transfer set: unlabelled windows written atomically, labelled by the teacher, learnt with the KD term only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.core.errors import ConfigError


@pytest.fixture(scope="module")
def transfer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgekd.data.transfer import build_transfer
    from edgekd.runtime.wav import write_wav

    root = tmp_path_factory.mktemp("transfer")
    own = root / "own"
    own.mkdir()
    write_wav(own / "kitchen.wav", (np.random.default_rng(0).standard_normal(40000) * 0.05).astype(np.float32), 16000)  # 2.5 s
    build_transfer(root / "t", 0.25, engines={"espeak": 1.0}, extra=[own], phrases={"beep": _bursts(root / "beep")}, per_phrase=3, seed=3)
    return root / "t"


def _bursts(folder: Path) -> list[Path]:
    """Two stand-in phrase clips: 0.5 s tone bursts between 0.2 s of silence."""
    from edgekd.runtime.wav import write_wav

    folder.mkdir()
    out = []
    for k, hz in enumerate((440.0, 660.0)):
        t = np.arange(8000) / 16000
        write_wav(folder / f"b{k}.wav", np.concatenate([np.zeros(3200), 0.5 * np.sin(2 * np.pi * hz * t), np.zeros(3200)]).astype(np.float32), 16000)
        out.append(folder / f"b{k}.wav")
    return out


def test_transfer_windows_sources_and_atomicity(transfer_dir: Path) -> None:
    from edgekd.data.transfer import TRANSFER, build_transfer
    from edgekd.runtime.wav import load_audio

    meta = json.loads((transfer_dir / "transfer_meta.json").read_text())
    # 15 s generated (80% speech); 3 phrase windows; 2.5 s cut with a 0.5 s hop
    assert meta["by_source"] == {"speech": 12, "noise": 3, "phrase": 3, "extra": 4}
    assert meta["phrases"] == {"beep": 3}
    rows = (transfer_dir / "transfer.tsv").read_text().splitlines()[1:]
    files = sorted((transfer_dir / TRANSFER).glob("*.wav"))
    assert len(rows) == len(files) == meta["windows"] == 22
    assert {r.split("\t")[2] for r in rows if r.split("\t")[1] == "phrase"} == {"beep"}
    assert {r.split("\t")[2] for r in rows if r.split("\t")[1] == "extra"} == {f"{transfer_dir.parent / 'own'}/kitchen.wav"}
    lens = {load_audio(f, 16000).shape[0] for f in files}
    assert lens == {16000}
    speech = [load_audio(transfer_dir / r.split("\t")[0], 16000) for r in rows if r.split("\t")[1] == "speech"]
    assert max(float(np.abs(x).max()) for x in speech) > 0.1  # real speech, not silence
    assert not list(transfer_dir.parent.glob(".*partial"))
    with pytest.raises(ConfigError, match="exists"):
        build_transfer(transfer_dir, 0.1)
    empty = transfer_dir.parent / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no .wav files"):
        build_transfer(transfer_dir.parent / "t2", 0.0, extra=[empty])
    assert not (transfer_dir.parent / "t2").exists() and not list(transfer_dir.parent.glob(".*partial"))


def test_phrase_windows_place_warp_and_cut_the_phrase(tmp_path: Path) -> None:
    from edgekd.data.transfer import PHRASE_WARP, phrase_windows

    clips = _bursts(tmp_path / "beep")
    ws = phrase_windows(clips, 60, seed=5)
    assert len(ws) == 60 and {w.shape for w in ws} == {(16000,)}
    assert all(10 ** (-18 / 20) - 1e-4 <= float(np.abs(w).max()) <= 1.0 + 1e-6 for w in ws)
    np.testing.assert_array_equal(np.stack(ws), np.stack(phrase_windows(clips, 60, seed=5)))  # seeded
    # how long the 0.5 s burst lasts in each window: whole, warped (0.8-1.25x), or cut off at an edge
    loud = np.array([int(np.sum(np.abs(w) > 0.1 * np.abs(w).max())) for w in ws])
    assert loud.max() <= 8000 / PHRASE_WARP[0] + 200
    assert np.sum(loud < 8000 / PHRASE_WARP[1] - 200) >= 3  # partial phrases
    assert np.sum(np.abs(loud - 8000) > 400) >= 20  # warped
    speech = [(np.random.default_rng(1).standard_normal(16000) * 0.1).astype(np.float32)]
    over = [int(np.sum(w == 0)) < 1000 for w in phrase_windows(clips, 60, speech=speech, seed=5)]
    assert 0 < sum(over) < 60  # some windows lie over the speech, most do not
    with pytest.raises(ConfigError, match="training clips"):
        phrase_windows([], 3)


def test_phrase_windows_added_to_a_finished_transfer_set(transfer_dir: Path, tmp_path: Path) -> None:
    from edgekd.data.transfer import TRANSFER, with_phrase_windows

    meta = with_phrase_windows(transfer_dir, tmp_path / "t", {"boop": _bursts(tmp_path / "boop")}, 2, seed=1)
    assert meta["windows"] == 24 and meta["by_source"]["phrase"] == 5 and meta["phrases"] == {"beep": 3, "boop": 2}
    rows = (tmp_path / "t" / "transfer.tsv").read_text().splitlines()[1:]
    assert len(rows) == len(list((tmp_path / "t" / TRANSFER).glob("*.wav"))) == 24 and rows[-1].endswith("\tphrase\tboop")
    assert json.loads((transfer_dir / "transfer_meta.json").read_text())["windows"] == 22  # the source is untouched
    with pytest.raises(ConfigError, match="exists"):
        with_phrase_windows(transfer_dir, tmp_path / "t", {"boop": _bursts(tmp_path / "boop2")}, 2)
    with pytest.raises(ConfigError, match="not a transfer set"):
        with_phrase_windows(tmp_path / "boop", tmp_path / "t4", {}, 2)
    assert not list(tmp_path.glob(".*partial"))


def test_concat_marks_transfer_rows_unlabelled(transfer_dir: Path, tiny_kws_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from edgekd.train.pipeline import concat_sets, load_transfer

    t = load_transfer(transfer_dir, rooms=False, cache_dir=tmp_path, progress=False)
    assert len(t) == 22 and t.x.shape[1:] == tiny_kws_data.train.x.shape[1:]
    both = concat_sets(tiny_kws_data.train, t)
    n = len(tiny_kws_data.train)
    assert len(both) == n + 22 and np.all(both.y[n:] == -1) and np.array_equal(both.y[:n], tiny_kws_data.train.y)
    assert both.clip[n:].min() == len(tiny_kws_data.train.files) and len(both.files) == len(tiny_kws_data.train.files) + 22


def test_student_learns_the_teachers_logits_on_transfer_windows(transfer_dir: Path, tiny_data: Path, tiny_checkpoint: Path,
                                                                 tmp_path: Path) -> None:
    from edgekd.train.checkpoint import Checkpoint

    out = tmp_path / "s.pt"
    base = [sys.executable, "-m", "edgekd", "train", "student", "--data", str(tiny_data), "--arch", "dscnn", "--epochs", "1",
            "--views", "1", "--no-rooms", "--batch-size", "16", "--threads", "1", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    p = subprocess.run([*base, "--teacher", str(tiny_checkpoint), "--transfer", str(transfer_dir)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    ck = Checkpoint.load(out)
    assert ck.provenance["transfer"]["windows"] == 22 and ck.provenance["teacher"] == tiny_checkpoint.name
    caches = [json.loads(i.read_text()) for i in (tmp_path / "cache").glob("teacher-*/index.json")]
    assert sorted(c["features"]["rows"] for c in caches)[0] == 22  # the teacher labelled the 22 windows in a cache of their own
    p = subprocess.run([*base, "--no-teacher", "--transfer", str(transfer_dir)], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--transfer needs --teacher" in p.stderr
    p = subprocess.run([*base, "--teacher", str(tiny_checkpoint), "--transfer", str(tiny_data)], capture_output=True, text=True)
    assert p.returncode == 2 and "not a transfer set" in p.stderr


def test_qat_fine_tuning_keeps_the_transfer_windows(transfer_dir: Path, tiny_kws_data, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """QAT fine-tunes on the labelled clips plus the transfer windows the float student was distilled on (the
    teacher labels them); without a teacher it cannot."""
    from edgekd.train.pipeline import train_qat

    kw = {"epochs": 1, "threads": 1, "cache_dir": tmp_path / "cache", "progress": False}
    plain = train_qat(tiny_kws_data, tiny_checkpoint, tmp_path / "a.pt", teacher=[str(tiny_checkpoint)], **kw)
    both = train_qat(tiny_kws_data, tiny_checkpoint, tmp_path / "b.pt", teacher=[str(tiny_checkpoint)], transfer=transfer_dir, **kw)
    assert "transfer" not in plain.provenance and both.provenance["transfer"]["windows"] == 22
    caches = [json.loads(i.read_text()) for i in (tmp_path / "cache").glob("teacher-*/index.json")]
    assert sorted(c["features"]["rows"] for c in caches)[0] == 22  # the teacher labelled the windows
    with pytest.raises(ConfigError, match="--transfer needs --teacher"):
        train_qat(tiny_kws_data, tiny_checkpoint, tmp_path / "c.pt", transfer=transfer_dir, **kw)
    assert not (tmp_path / "c.pt").exists()
