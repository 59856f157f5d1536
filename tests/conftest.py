"""Shared fixtures: a tiny synthesized dataset and a tiny trained bundle (made once per session, in tmp)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "kws12-dscnn-kd"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgekd.data.synth_kws import SynthKwsConfig, synth_kws

    out = tmp_path_factory.mktemp("data") / "kws"
    synth_kws(out, SynthKwsConfig(per_word=8, unknown_total=16, silence_total=8, workers=1))
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgekd.train.config import TrainConfig
    from edgekd.train.pipeline import load_kws_data, train_kws

    root = tmp_path_factory.mktemp("train")
    kd = load_kws_data(tiny_data, views=1, cache_dir=root / "cache", workers=1, progress=False)
    ckpt = root / "tiny.pt"
    train_kws(kd, ckpt, TrainConfig(arch="dscnn", epochs=1, batch_size=32, threads=1), progress=False)
    return ckpt


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgekd.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    export_onnx(tiny_checkpoint, out, golden_wav=SHIPPED / "golden" / "clip.wav")
    return out


@pytest.fixture(scope="session")
def shipped_bundle() -> Path:
    assert (SHIPPED / "manifest.json").is_file(), f"the shipped bundle {SHIPPED} is missing"
    return SHIPPED
