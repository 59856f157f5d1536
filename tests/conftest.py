"""Shared fixtures: a tiny synthesized dataset and a tiny trained bundle (made once per session, in tmp)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "kws12-dscnn-kd"


# The tiny set, synthesized in a process of its own: espeak-ng carries state from one utterance to the next, so in
# this process the clips would depend on what earlier tests made it say (edgekd/data/voices/espeak.py).
TINY_SYNTH = ("import sys; from pathlib import Path; from edgekd.data.synth_kws import SynthKwsConfig, synth_kws; "
              "synth_kws(Path(sys.argv[1]), SynthKwsConfig(per_word=8, unknown_total=16, silence_total=8, workers=1, "
              "engines=(('espeak', 1.0),)))")


def synth_tiny(out: Path) -> Path:
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", TINY_SYNTH, str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_tiny(tmp_path_factory.mktemp("data") / "kws")


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
    from edgekd.data.synth_kws import synth_keyword_stream
    from edgekd.export.onnx import export_onnx
    from edgekd.runtime.wav import write_wav

    root = tmp_path_factory.mktemp("bundle")
    audio, _ = synth_keyword_stream(("yes", "stop"), seed=3)
    write_wav(root / "clip.wav", audio, 16000)
    export_onnx(tiny_checkpoint, root / "tiny", golden_wav=root / "clip.wav")
    return root / "tiny"


@pytest.fixture(scope="session")
def shipped_bundle() -> Path:
    assert (SHIPPED / "manifest.json").is_file(), f"the shipped bundle {SHIPPED} is missing"
    return SHIPPED


@pytest.fixture(scope="session")
def tiny_kws_data(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from edgekd.train.pipeline import load_kws_data

    return load_kws_data(tiny_data, views=1, cache_dir=tmp_path_factory.mktemp("cache"), workers=1, progress=False)


@pytest.fixture(scope="session")
def tiny_qat_checkpoint(tiny_kws_data, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    from edgekd.train.pipeline import train_qat

    out = tmp_path_factory.mktemp("qat") / "tiny-qat.pt"
    train_qat(tiny_kws_data, tiny_checkpoint, out, epochs=1, threads=1, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_int8_bundle(tiny_qat_checkpoint: Path, tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgekd.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("int8") / "tiny-int8"
    export_onnx(tiny_qat_checkpoint, out, golden_wav=tiny_bundle / "golden" / "clip.wav", int8=True)
    return out


STREAM_POSTPROCESS = {"stride_ms": 80, "threshold": 0.3, "smooth_ms": 160}


@pytest.fixture(scope="session")
def tiny_stream_checkpoint(tiny_kws_data, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """A briefly trained dscnn-stream student."""
    from edgekd.train.config import TrainConfig
    from edgekd.train.pipeline import train_kws

    out = tmp_path_factory.mktemp("stream") / "s.pt"
    train_kws(tiny_kws_data, out, TrainConfig(arch="dscnn-stream", epochs=1, batch_size=32, threads=1), progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_stream_bundle(tiny_stream_checkpoint: Path, tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dscnn-stream student exported with its streaming-state graph (80 ms hop)."""
    from edgekd.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("stream-bundle") / "b"
    export_onnx(tiny_stream_checkpoint, out, golden_wav=tiny_bundle / "golden" / "clip.wav", postprocess=STREAM_POSTPROCESS)
    return out


@pytest.fixture(scope="session")
def tiny_stream_int8_bundle(tiny_kws_data, tiny_stream_checkpoint: Path, tiny_bundle: Path,  # type: ignore[no-untyped-def]
                            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dscnn-stream student after QAT, exported int8 with its int8 streaming-state graph."""
    from edgekd.export.onnx import export_onnx
    from edgekd.train.pipeline import train_qat

    root = tmp_path_factory.mktemp("stream-int8")
    train_qat(tiny_kws_data, tiny_stream_checkpoint, root / "q.pt", epochs=1, threads=1, progress=False)
    export_onnx(root / "q.pt", root / "b", golden_wav=tiny_bundle / "golden" / "clip.wav", int8=True, postprocess=STREAM_POSTPROCESS)
    return root / "b"
