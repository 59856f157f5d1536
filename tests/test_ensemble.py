"""Students merged into one bundle (``edgekd.export.ensemble``): the merged graphs give the members' mean posterior,
whole window and streaming, at any chunking; the runtime takes the bundle as it is; mismatched members are one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import STREAM_POSTPROCESS


@pytest.fixture(scope="module")
def second_member(tiny_kws_data, tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """Another draw of the tiny int8 streaming student (another seed), exported like ``tiny_stream_int8_bundle``."""
    from edgekd.export.onnx import export_onnx
    from edgekd.train.config import TrainConfig
    from edgekd.train.pipeline import train_kws, train_qat

    root = tmp_path_factory.mktemp("member")
    train_kws(tiny_kws_data, root / "s.pt", TrainConfig(arch="dscnn-stream", epochs=1, batch_size=32, threads=1, seed=1), progress=False)
    train_qat(tiny_kws_data, root / "s.pt", root / "q.pt", epochs=1, threads=1, seed=1, progress=False)
    export_onnx(root / "q.pt", root / "b", golden_wav=tiny_bundle / "golden" / "clip.wav", int8=True, postprocess=STREAM_POSTPROCESS)
    return root / "b"


@pytest.fixture(scope="module")
def merged(tiny_stream_int8_bundle: Path, second_member: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgekd.export.ensemble import merge_students

    out = tmp_path_factory.mktemp("merged") / "b"
    merge_students([tiny_stream_int8_bundle, second_member], out)
    return out


def _posteriors(bundle: Path, audio: np.ndarray, chunk: int) -> np.ndarray:
    """Every label's posterior at each inference of a stream fed ``chunk`` samples at a time."""
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.kws_post import softmax

    stream = load_kws(bundle, backend="onnx", threads=1).create_stream()
    out: list[np.ndarray] = []
    stream.on_inference = lambda t_ms, logits: out.append(softmax(np.asarray(logits, np.float64)))
    for i in range(0, audio.shape[0], chunk):
        stream.accept_waveform(audio[i : i + chunk])
    return np.concatenate(out)


def test_the_merged_bundle_streams_the_members_mean_posterior_at_any_chunking(tiny_stream_int8_bundle: Path, second_member: Path,
                                                                             merged: Path) -> None:
    from edgekd.runtime.wav import load_audio

    audio = load_audio(merged / "golden" / "clip.wav", 16000)
    a, b = (_posteriors(p, audio, 1280) for p in (tiny_stream_int8_bundle, second_member))
    assert a.shape == b.shape and a.shape[0] > 10 and np.abs(a - b).max() > 1e-3  # two different students
    m = _posteriors(merged, audio, 1280)
    np.testing.assert_allclose(m, (a + b) / 2, atol=1e-5)
    np.testing.assert_allclose(_posteriors(merged, audio, 333), m, atol=1e-5)  # chunk-size invariance


def test_the_merged_whole_window_graph_is_the_members_mean_too(tiny_stream_int8_bundle: Path, second_member: Path, merged: Path) -> None:
    from edgekd.runtime.backends.onnx import OnnxBackend
    from edgekd.runtime.kws_post import softmax
    from edgekd.runtime.manifest import ModelManifest

    x = np.load(merged / "golden" / "input.npy")
    probs = [softmax(OnnxBackend(p / "model.onnx").run({"features": x})["logits"].astype(np.float64))
             for p in (tiny_stream_int8_bundle, second_member, merged)]
    np.testing.assert_allclose(probs[2], (probs[0] + probs[1]) / 2, atol=1e-5)
    m = ModelManifest.load(merged)
    m.verify_files(merged)
    members = [ModelManifest.load(p) for p in (tiny_stream_int8_bundle, second_member)]
    assert m.name == f"{members[0].name}-x2" and not m.verifier and m.labels == members[0].labels
    assert [s.input for s in m.kws_streaming.states] == [f"m{k}/{s.input}" for k in (0, 1) for s in members[k].kws_streaming.states]
    assert m.kws_streaming.graph_macs_per_hop == sum(p.kws_streaming.graph_macs_per_hop for p in members)
    assert [e["bundle"] for e in m.provenance["ensemble"]] == [str(tiny_stream_int8_bundle), str(second_member)]


def test_the_merged_bundle_passes_selftest_and_a_changed_file_is_caught(merged: Path, tmp_path: Path) -> None:
    import shutil

    from edgekd.runtime.selftest import selftest

    checks = selftest(merged, backend="onnx")
    assert all(c.ok for c in checks) and {"golden output", "golden stream"} <= {c.name for c in checks}, [c.line() for c in checks]
    copy = tmp_path / "b"
    shutil.copytree(merged, copy)
    (copy / "model_stream.onnx").write_bytes(b"not a graph")  # a changed file is caught, like in any bundle
    from edgekd.core.errors import BundleError
    from edgekd.runtime.manifest import ModelManifest

    with pytest.raises(BundleError):
        ModelManifest.load(copy).verify_files(copy)


def test_mismatched_or_single_members_are_one_clear_line(tiny_stream_int8_bundle: Path, tiny_stream_bundle: Path, tmp_path: Path) -> None:
    from edgekd.core.errors import ConfigError
    from edgekd.export.ensemble import merge_students

    with pytest.raises(ConfigError, match="two or more"):
        merge_students([tiny_stream_int8_bundle], tmp_path / "one")
    with pytest.raises(ConfigError, match="quantization differ"):  # an int8 and a float student
        merge_students([tiny_stream_int8_bundle, tiny_stream_bundle], tmp_path / "mixed")
    assert not (tmp_path / "one").exists() and not (tmp_path / "mixed").exists()
