"""SED bundles: export, streaming frame scores equal the whole clip's, identical events, selftest, `edgekd run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.runtime.sed_post import SedPostprocessConfig

LABELS = ["alarm", "bell", "door"]


@pytest.fixture(scope="module", params=["fp32", "int8"])
def sed_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """An (untrained) sed-causal-cnn bundle, float or int8 through the QAT transform (observers calibrated on the clip)."""
    from edgekd.export.sed import export_sed
    from edgekd.runtime.frontend import LogMelFrontend
    from edgekd.train.models import build_model

    torch.manual_seed(3)
    model = build_model("sed-causal-cnn", n_labels=len(LABELS), n_mels=40)
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 6) / 16000
    audio = (0.02 * rng.standard_normal(t.shape[0]) + 0.3 * np.sin(2 * np.pi * 900 * t) * ((t > 2) & (t < 3.5))).astype(np.float32)
    feats = torch.from_numpy(LogMelFrontend().features(audio))[None]
    if request.param == "int8":
        from edgekd.train.qat import calibrate, to_qat

        model = to_qat(model)
        calibrate(model, [feats])
    with torch.no_grad():  # thresholds from this (untrained) model's own scores, so that events happen
        p = torch.sigmoid(model.eval()(feats))[0].numpy()
    on, off = float(np.quantile(p, 0.9)), float(np.quantile(p, 0.7))
    pp = SedPostprocessConfig(onset_threshold=on, offset_threshold=off, median_frames=3, min_duration_ms=40, merge_gap_ms=40)
    out = tmp_path_factory.mktemp("sed") / "bundle"
    man = export_sed(model, LABELS, out, name="sed-test", arch="sed-causal-cnn", postprocess=pp, golden_audio=audio)
    assert man.quantization == ("int8-qat" if request.param == "int8" else "fp32")
    return out, audio


@pytest.mark.parametrize("chunk", [160, 1000, 4321])
def test_stream_equals_whole_clip(sed_bundle: tuple[Path, np.ndarray], chunk: int) -> None:
    from edgekd.runtime.detector import load_model

    bundle, audio = sed_bundle
    det = load_model(bundle)
    whole = det.predict_clip(audio)
    s = det.create_stream()
    probs: list[np.ndarray] = []
    s.on_inference = probs.append
    lines = []
    for i in range(0, audio.shape[0], chunk):
        lines += s.accept_waveform(audio[i : i + chunk])
    lines += s.finish()
    got = np.concatenate(probs)
    assert got.shape == whole.shape and whole.shape[0] == ((audio.shape[0] - 480) // 160 + 1) // 4
    np.testing.assert_allclose(got, whole, atol=1e-5, rtol=0)
    events = sorted((e.label, e.onset_ms, e.offset_ms) for e in lines if e.offset_ms is not None)
    assert events == sorted((e.label, e.onset_ms, e.offset_ms) for e in det.events(audio))
    assert events, "the test needs at least one event to compare"


def test_selftest_and_run_print_onsets_and_events(sed_bundle: tuple[Path, np.ndarray]) -> None:
    bundle, _ = sed_bundle
    st = subprocess.run([sys.executable, "-m", "edgekd", "selftest", str(bundle)], capture_output=True, text=True)
    assert st.returncode == 0, st.stdout + st.stderr
    man = json.loads((bundle / "manifest.json").read_text())
    assert man["task"] == "sed" and man["streaming"]["context_frames"] > 0
    p = subprocess.run([sys.executable, "-m", "edgekd", "run", str(bundle), "--wav", str(bundle / "golden" / "clip.wav")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(ln) for ln in p.stdout.splitlines()]
    closed = [ln for ln in lines if "offset_ms" in ln]
    assert closed and all(ln["offset_ms"] > ln["onset_ms"] and ln["label"] in LABELS for ln in closed)
    assert any(ln.get("event") == "onset" for ln in lines)
    gold = json.loads((bundle / "golden" / "events.json").read_text())
    assert sorted((e["label"], e["onset_ms"], e["offset_ms"]) for e in closed) == sorted((e["label"], e["onset_ms"], e["offset_ms"]) for e in gold)


def test_a_model_that_sees_the_future_is_not_exported_as_a_stream(tmp_path: Path) -> None:
    from edgekd.export.sed import export_sed
    from edgekd.train.models import build_model

    with pytest.raises(ValueError, match="not a causal"):
        export_sed(build_model("sed-crnn", n_labels=3, n_mels=40), LABELS, tmp_path / "b", name="t", arch="sed-crnn",
                   postprocess=SedPostprocessConfig())
    assert not (tmp_path / "b").exists()


def test_bench_measures_a_sed_bundle(sed_bundle: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    bundle, _ = sed_bundle
    p = subprocess.run([sys.executable, "-m", "edgekd", "bench", str(bundle), "--wav", str(bundle / "golden" / "clip.wav"), "--repeats", "1",
                        "--json", str(tmp_path / "b.json")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["cpu_ms_per_audio_s"] > 0 and r["mode"] == "stream" and r["stride_ms"] == pytest.approx(200.0) and r["latency_ms"]["n"] > 0


def test_eval_scores_the_runtime_events_against_a_tsv(sed_bundle: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    bundle, audio = sed_bundle
    from edgekd.runtime.detector import load_model
    from edgekd.runtime.wav import load_audio, write_wav

    (tmp_path / "a").mkdir()
    write_wav(tmp_path / "a" / "x.wav", audio, 16000)
    # the audio as eval reads it (16-bit): this untrained model's scores sit close to its thresholds
    events = load_model(bundle).events(load_audio(tmp_path / "a" / "x.wav", 16000))
    tsv = tmp_path / "ref.tsv"
    # the reference is the bundle's own events: event- and segment-based F1 must be exactly 1
    tsv.write_text("filename\tonset\toffset\tevent_label\n" + "".join(f"x.wav\t{e.onset_ms / 1000}\t{e.offset_ms / 1000}\t{e.label}\n" for e in events))
    p = subprocess.run([sys.executable, "-m", "edgekd", "eval", str(bundle), "--sed-annotations", str(tsv), "--audio", str(tmp_path / "a"),
                        "--json", str(tmp_path / "r.json")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["event_based"]["overall"]["f1"] == 1.0 and r["segment_based"]["overall"]["f1"] == 1.0 and r["events_reference"] == len(events)
    tsv.write_text("filename\tonset\toffset\tevent_label\nx.wav\t1.0\t2.0\twhistle\n")
    p = subprocess.run([sys.executable, "-m", "edgekd", "eval", str(bundle), "--sed-annotations", str(tsv), "--audio", str(tmp_path / "a")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "ref.tsv:2: unknown label 'whistle'" in p.stderr and "Traceback" not in p.stderr
