"""``ModelManifest``: what a bundle is, stored as ``manifest.json`` beside the model (stdlib only)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd.core.errors import BundleError

__all__ = ["SCHEMA_VERSION", "MANIFEST_NAME", "ModelManifest", "TensorSpec", "StateSpec", "KwsStreaming", "SedStreaming", "Golden",
           "GoldenCheck", "VerifierBlock", "VERIFIER_FILES", "sha256_file"]

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
TASKS = ("kws", "wakeword", "sed")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# golden-block keys that are settings, not file names
_GOLDEN_SETTINGS = frozenset({"atol", "rtol", "tflite_atol", "tflite_rtol", "max_steps", "tflite_max_steps", "event_tolerance_ms",
                              "torch_vs_onnx_max_abs"})
_HEX = frozenset("0123456789abcdef")
# what the frontend block must give (the fields of edgekd.runtime.frontend.FrontendParams)
_FRONTEND_KEYS = ("sample_rate", "window_samples", "hop_samples", "n_fft", "n_mels", "fmin_hz", "fmax_hz", "log_floor", "window", "mel_scale")


def _check_shape(d: dict[str, Any]) -> None:
    """Types and cross-field facts of a manifest, one ``BundleError`` line for the first that is wrong."""

    def bad(what: str) -> BundleError:
        return BundleError(f"manifest {what}; re-export the bundle")

    labels = d.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise bad("labels must be a non-empty list of strings")
    if len(set(labels)) != len(labels):
        raise bad("labels repeat a name")
    for key in ("frontend", "streaming", "postprocess", "files", "provenance", "metrics", "golden", "verifier"):
        if key in d and not isinstance(d[key], dict):
            raise bad(f"{key} must be an object, not {type(d[key]).__name__}")
    for key in ("inputs", "outputs"):
        if key in d and (not isinstance(d[key], list) or not d[key] or not all(isinstance(t, dict) for t in d[key])):
            raise bad(f"{key} must be a non-empty list of tensor objects")
    for rel, sha in (d.get("files") or {}).items():
        if not isinstance(sha, str) or len(sha) != 64 or not set(sha) <= _HEX:
            raise bad(f"files: the sha256 of {rel!r} is not 64 hex digits")
    sr, fe = d.get("sample_rate"), d.get("frontend") or {}
    missing = [k for k in _FRONTEND_KEYS if k not in fe]
    if missing:
        raise bad(f"frontend lacks {', '.join(missing)} (every feature parameter must be written down)")
    if not isinstance(sr, int) or isinstance(sr, bool) or sr <= 0:
        raise bad("sample_rate must be a positive integer")
    if "sample_rate" in fe and fe["sample_rate"] != sr:
        raise bad(f"sample_rate {sr} contradicts the frontend's {fe['sample_rate']}")
    wf = d.get("window_frames")
    if not _positive_int(wf):
        raise bad("window_frames must be a positive integer")
    _check_streaming(d.get("streaming") or {}, d.get("task", "kws"), bad)
    _check_verifier(d.get("verifier") or {}, d.get("task", "kws"), labels, bad)
    for key, v in (d.get("golden") or {}).items():
        if key in _GOLDEN_SETTINGS:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise bad(f"golden.{key} must be a finite number >= 0")
        elif not isinstance(v, str) or not v:
            raise bad(f"golden.{key} must name a file of the bundle")


def _positive_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x > 0


def _check_streaming(st: dict[str, Any], task: Any, bad: Any) -> None:
    """The streaming block: for a sed bundle its pooling/context/stride integers; for a kws bundle with one, the
    streaming-state graph's file names, tensor names, hop and state tensors."""
    if task == "sed":
        for key in ("time_pool", "context_frames", "stride_frames"):
            if key in st and not _positive_int(st[key]):
                raise bad(f"streaming.{key} must be a positive integer")
        return
    if not st:
        return
    for key in ("model_file", "init", "frames_input", "logits_output"):
        if not isinstance(st.get(key), str) or not st[key]:
            raise bad(f"streaming.{key} must be a non-empty string")
    tfl = [k for k in ("tflite_model_file", "tflite_init") if k in st]
    if tfl and (len(tfl) != 2 or not all(isinstance(st[k], str) and st[k] for k in tfl)):
        raise bad("streaming.tflite_model_file and streaming.tflite_init go together, as non-empty strings")
    if not _positive_int(st.get("hop_frames")):
        raise bad("streaming.hop_frames must be a positive integer")
    macs = st.get("graph_macs_per_hop", 0)
    if macs is not None and not (isinstance(macs, int) and not isinstance(macs, bool) and macs >= 0):
        raise bad("streaming.graph_macs_per_hop must be a whole number >= 0")
    states = st.get("states")
    if not isinstance(states, list) or not states:
        raise bad("streaming.states must be a non-empty list")
    for x in states:
        if (not isinstance(x, dict) or not all(isinstance(x.get(k), str) and x[k] for k in ("input", "output"))
                or not isinstance(x.get("shape"), list) or not all(_positive_int(n) for n in x["shape"])):
            raise bad("streaming.states must hold {input, output, shape} objects (names and positive sizes)")
        if x.get("dtype", "float32") not in STATE_DTYPES:
            raise bad(f"streaming.states dtype must be one of {', '.join(STATE_DTYPES)}")


MAX_PEAK_POWER = 4.0  # verifier.peak_power: beyond this the student's score, not the verifier, would decide
MAX_LOOKBACK_MS = 1000  # verifier.lookback_ms: a second that ended longer ago than this is another utterance

# what a verifier folder holds (edgekd.runtime.verifier): its description, the head, the backbone's two files
VERIFIER_FILES = ("verifier.json", "head.onnx", "melspectrogram.onnx", "embedding_model.onnx")


def _check_verifier(v: dict[str, Any], task: Any, labels: list[str], bad: Any) -> None:
    """The verifier block of a wake-word/KWS bundle with a second stage: its folder and a gate in (0, 1) per label."""
    if not v:
        return
    if task == "sed":
        raise bad("verifier: a sed bundle has no second stage")
    folder, gates, every = v.get("dir"), v.get("gates"), v.get("every", 1)
    if not _positive_int(every):
        raise bad("verifier.every must be a positive integer (verify every n-th inference of an opening)")
    if "max_calls" in v and not _positive_int(v["max_calls"]):
        raise bad("verifier.max_calls must be a positive integer (the most verifier calls of one opening), or absent for no cap")
    if "hold" in v and (type(v["hold"]) is not int or v["hold"] < 0):
        raise bad("verifier.hold must be a whole number >= 0 (inferences a gate stays open after the score falls under it)")
    if "peak_power" in v and (not isinstance(v["peak_power"], (int, float)) or isinstance(v["peak_power"], bool)
                              or not 0.0 <= float(v["peak_power"]) <= MAX_PEAK_POWER):
        raise bad(f"verifier.peak_power must be a number in [0, {MAX_PEAK_POWER:g}] (the weight of the opening's peak student score)")
    if "lookback_ms" in v and (type(v["lookback_ms"]) is not int or not 0 <= v["lookback_ms"] <= MAX_LOOKBACK_MS):
        raise bad(f"verifier.lookback_ms must be a whole number of ms in [0, {MAX_LOOKBACK_MS}] (how far back the first call of an "
                  "opening also looks)")
    if not isinstance(folder, str) or not folder.strip():
        raise bad("verifier.dir must name the verifier folder inside the bundle")
    if not isinstance(gates, dict) or not gates:
        raise bad("verifier.gates must be an object of label -> gate")
    for lab, g in gates.items():
        if lab not in labels:
            raise bad(f"verifier.gates names {lab!r}, not a label")
        if not isinstance(g, (int, float)) or isinstance(g, bool) or not 0.0 < float(g) < 1.0:
            raise bad(f"verifier.gates[{lab!r}] must be a number in (0, 1)")


@dataclass(frozen=True)
class VerifierBlock:
    """The ``verifier`` block: a second stage (``edgekd.runtime.verifier``) in the folder ``dir`` of the bundle. A
    keyword's smoothed posterior at or over its ``gates`` entry opens the gate; the verifier then scores the last
    second, and the keyword fires when that score reaches the post-processing threshold. ``every`` > 1 asks it on
    the first inference of an opening and every ``every``-th after it: fewer calls where the gate stays open.
    ``max_calls`` caps the calls of one opening (None: no cap); an opening longer than that is decided by then.
    ``hold`` keeps a gate open for that many inferences after the score falls under it: the student's score tends to
    peak while the phrase is still being said, before the verifier's last second holds all of it. ``peak_power`` > 0
    weighs the two stages' evidence together: the verified score is the verifier's posterior times the opening's peak
    (the highest smoothed posterior of the keyword since its gate opened) to that power; 0 is the verifier alone.
    ``lookback_ms`` > 0: the first call of an opening also scores the second that ended that long before it and keeps,
    per label, the higher posterior (two verifier runs): a gate that opens only after a slow or unusual speaker has
    finished the phrase would otherwise leave its start outside every second the verifier hears."""

    dir: str
    gates: dict[str, float]
    every: int = 1  # of consecutive inferences with a gate open, the first and every ``every``-th ask the verifier
    max_calls: int | None = None  # at most this many of them per opening
    hold: int = 0  # inferences a gate stays open after the score falls under it
    peak_power: float = 0.0  # verified score = verifier posterior x (the opening's peak smoothed posterior) ** peak_power
    lookback_ms: int = 0  # the first call of an opening also scores the second that ended this long before it

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VerifierBlock:
        """From a block ``_check_verifier`` accepted."""
        cap = d.get("max_calls")
        return cls(dir=str(d["dir"]), gates={str(k): float(v) for k, v in d["gates"].items()}, every=int(d.get("every", 1)),
                   max_calls=None if cap is None else int(cap), hold=int(d.get("hold", 0)),
                   peak_power=float(d.get("peak_power", 0.0)), lookback_ms=int(d.get("lookback_ms", 0)))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dir": self.dir, "gates": dict(self.gates), "every": self.every}
        if self.max_calls is not None:
            out["max_calls"] = self.max_calls
        if self.hold:
            out["hold"] = self.hold
        if self.peak_power:
            out["peak_power"] = self.peak_power
        if self.lookback_ms:
            out["lookback_ms"] = self.lookback_ms
        return out

    def files(self) -> list[str]:
        return [f"{self.dir}/{name}" for name in VERIFIER_FILES]


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``-1`` for a dynamic axis) and dtype of one model input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(name=str(d["name"]), shape=tuple(int(x) for x in d["shape"]), dtype=str(d.get("dtype", "float32")))


STATE_DTYPES = ("float32", "uint8", "int8")


@dataclass(frozen=True)
class StateSpec:
    """One state tensor of a streaming-state graph: fed as ``input``, returned as ``output``; ``dtype`` is its type at
    the call boundary (an int8 graph passes quantized states as uint8)."""

    input: str
    output: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class KwsStreaming:
    """The ``streaming`` block of a KWS bundle with a streaming-state graph: one hop of new frames and the states in,
    the logits and the new states out. Written by the exporter and read by the runtime through this type only."""

    model_file: str
    init: str  # .npz of the initial states (the graph's own state after a long silence)
    hop_frames: int
    frames_input: str
    logits_output: str
    states: tuple[StateSpec, ...]
    graph_macs_per_hop: int = 0
    # the LiteRT twin of the graph (same state names; its own int8 types and NHWC shapes, its own initial states)
    tflite_model_file: str = ""
    tflite_init: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["states"] = [{"input": x.input, "output": x.output, "shape": list(x.shape), "dtype": x.dtype} for x in self.states]
        if not self.tflite_model_file:
            del d["tflite_model_file"], d["tflite_init"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KwsStreaming:
        """From a block ``_check_streaming`` accepted."""
        return cls(model_file=d["model_file"], init=d["init"], hop_frames=int(d["hop_frames"]), frames_input=d["frames_input"],
                   logits_output=d["logits_output"], graph_macs_per_hop=int(d.get("graph_macs_per_hop") or 0),
                   tflite_model_file=str(d.get("tflite_model_file", "")), tflite_init=str(d.get("tflite_init", "")),
                   states=tuple(StateSpec(x["input"], x["output"], tuple(int(n) for n in x["shape"]), str(x.get("dtype", "float32")))
                                for x in d["states"]))


@dataclass(frozen=True)
class SedStreaming:
    """The ``streaming`` block of a SED bundle: output frames pool ``time_pool`` input frames, each sees
    ``context_frames`` output frames back, the stream runs the model every ``stride_frames`` output frames."""

    time_pool: int
    context_frames: int
    stride_frames: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GoldenCheck:
    """What one backend must reproduce: ``output`` from ``input`` within ``atol``/``rtol``, and, when the bundle has a
    golden WAV, the stream's ``expected`` detections (KWS) or events (SED)."""

    input: str
    output: str
    atol: float
    rtol: float
    wav: str
    expected: str


@dataclass(frozen=True)
class Golden:
    """The ``golden`` block: the bundle's reference answers (file names inside the bundle) and their tolerances, per
    backend. Exporters write it and ``selftest`` reads it through this type only; unknown keys are kept."""

    input: str = ""
    output: str = ""
    atol: float = 1e-4
    rtol: float = 0.0
    wav: str = ""
    detections: str = ""  # KWS: what the ONNX stream detects in the golden WAV
    events: str = ""  # SED: the events of the golden WAV
    tflite_output: str = ""
    tflite_atol: float = 1e-4
    tflite_detections: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # recorded facts (e.g. torch_vs_onnx_max_abs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Golden:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in names}, extra={k: v for k, v in d.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """The JSON block: files that exist, tolerances of the outputs that exist, then the extra facts."""
        d: dict[str, Any] = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra" and isinstance(v, str) and v}
        if self.output:
            d.update(atol=self.atol, rtol=self.rtol)
        if self.tflite_output:
            d["tflite_atol"] = self.tflite_atol
        return {**d, **self.extra}

    def replace(self, **changes: Any) -> Golden:
        return dataclasses.replace(self, **changes)

    def check(self, backend: str) -> GoldenCheck:
        """The reference a ``backend`` (``onnx`` or ``litert``) must meet."""
        if backend == "litert":
            return GoldenCheck(self.input, self.tflite_output, self.tflite_atol, 0.0, self.wav, self.tflite_detections)
        return GoldenCheck(self.input, self.output, self.atol, self.rtol, self.wav, self.events or self.detections)


@dataclass(frozen=True)
class ModelManifest:
    """Everything the runtime needs to know about a bundle; nothing is guessed at run time."""

    name: str
    task: str
    labels: tuple[str, ...]
    sample_rate: int
    frontend: dict[str, Any]
    model_file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    window_frames: int
    quantization: str = "fp32"
    tflite_file: str = ""
    streaming: dict[str, Any] = field(default_factory=dict)
    postprocess: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    golden: dict[str, Any] = field(default_factory=dict)
    verifier: dict[str, Any] = field(default_factory=dict)  # a second stage (VerifierBlock); empty: none
    schema_version: int = SCHEMA_VERSION

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        d["inputs"] = [dict(dataclasses.asdict(t), shape=list(t.shape)) for t in self.inputs]
        d["outputs"] = [dict(dataclasses.asdict(t), shape=list(t.shape)) for t in self.outputs]
        if not self.verifier:
            del d["verifier"]  # a bundle without a second stage reads as it always did
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelManifest:
        if not isinstance(d, dict):
            raise BundleError(f"manifest is a JSON {type(d).__name__}, not an object; re-export the bundle")
        _check_shape(d)
        try:
            version = int(d.get("schema_version", 0))
            if version != SCHEMA_VERSION:
                raise BundleError(
                    f"manifest schema_version {version} is not supported by this edgekd "
                    f"(expects {SCHEMA_VERSION}); re-export the bundle or upgrade edgekd"
                )
            task = str(d["task"])
            if task not in TASKS:
                raise BundleError(f"manifest task {task!r} is not one of {', '.join(TASKS)}")
            return cls(
                name=str(d["name"]),
                task=task,
                labels=tuple(str(x) for x in d["labels"]),
                sample_rate=int(d["sample_rate"]),
                frontend=dict(d["frontend"]),
                model_file=str(d["model_file"]),
                inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
                outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
                window_frames=int(d["window_frames"]),
                quantization=str(d.get("quantization", "fp32")),
                tflite_file=str(d.get("tflite_file", "")),
                streaming=dict(d.get("streaming", {})),
                postprocess=dict(d.get("postprocess", {})),
                files=dict(d.get("files", {})),
                provenance=dict(d.get("provenance", {})),
                metrics=dict(d.get("metrics", {})),
                golden=dict(d.get("golden", {})),
                verifier=dict(d.get("verifier", {})),
                schema_version=version,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise BundleError(f"manifest is malformed ({type(e).__name__}: {e}); re-export the bundle") from None

    @classmethod
    def load(cls, bundle_dir: str | os.PathLike[str]) -> ModelManifest:
        path = Path(bundle_dir) / MANIFEST_NAME
        if not path.is_file():
            raise BundleError(f"{bundle_dir}: no {MANIFEST_NAME}; is this an edgekd bundle folder?")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BundleError(f"{path}: unreadable manifest ({e}); re-export the bundle") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ModelManifest:
        return dataclasses.replace(self, **changes)

    # ---- integrity -----------------------------------------------------------------------
    def opened_files(self) -> list[str]:
        """Every bundle file the runtime or the self-test may open: each must be listed in ``files``."""
        out = [self.model_file]
        if self.tflite_file:
            out.append(self.tflite_file)
        for key in ("model_file", "init", "tflite_model_file", "tflite_init"):
            if isinstance(self.streaming.get(key), str):
                out.append(self.streaming[key])
        out += [v for k, v in sorted(self.golden.items()) if isinstance(v, str) and k not in _GOLDEN_SETTINGS]
        if self.verifier_block is not None:
            out += self.verifier_block.files()
        return out

    def check_listing(self, bundle_dir: str | os.PathLike[str]) -> None:
        """Every file the runtime opens is listed with a sha256, and every listed path lies inside the bundle
        (relative, no ``..``, no symlink leading out); ``BundleError`` names the first that is not."""
        root = Path(bundle_dir)
        real_root = root.resolve()
        for rel in [*self.files, *self.opened_files()]:
            pure = Path(rel)
            if pure.is_absolute() or ".." in pure.parts or not rel.strip():
                raise BundleError(f"{root}: manifest path {rel!r} is not a relative path inside the bundle; re-export the bundle")
            target = (root / rel).resolve()
            if not target.is_relative_to(real_root):
                raise BundleError(f"{root / rel}: leads outside the bundle (a symlink?); copy the real file into the bundle and re-export")
        unlisted = [rel for rel in self.opened_files() if rel not in self.files]
        if unlisted:
            raise BundleError(f"{root}: manifest lists no sha256 for {unlisted[0]}; re-export the bundle")

    def verify_files(self, bundle_dir: str | os.PathLike[str]) -> None:
        """Check the listing (``check_listing``) and every listed file against its sha256; raise ``BundleError``
        naming the first bad one."""
        root = Path(bundle_dir)
        self.check_listing(root)
        for rel, want in sorted(self.files.items()):
            p = root / rel
            if not p.is_file():
                raise BundleError(f"{p}: file named in the manifest is missing; re-copy the bundle")
            got = sha256_file(p)
            if got != want:
                raise BundleError(
                    f"{p}: sha256 {got[:12]}... does not match the manifest ({want[:12]}...); "
                    "the file is corrupt or was changed; re-copy or re-export the bundle"
                )

    @property
    def golden_block(self) -> Golden:
        """The golden block, typed."""
        return Golden.from_dict(self.golden)

    @property
    def kws_streaming(self) -> KwsStreaming | None:
        """The streaming-state graph of a KWS bundle, or None when it has none."""
        if self.task == "sed" or not self.streaming:
            return None
        return KwsStreaming.from_dict(self.streaming)

    @property
    def verifier_block(self) -> VerifierBlock | None:
        """The bundle's second stage, or None when it has none."""
        return VerifierBlock.from_dict(self.verifier) if self.verifier else None

    @property
    def sed_streaming(self) -> SedStreaming:
        """How a SED bundle streams (``BundleError`` when the block is incomplete)."""
        st = self.streaming
        try:
            return SedStreaming(int(st["time_pool"]), int(st["context_frames"]), int(st["stride_frames"]))
        except (KeyError, ValueError, TypeError):
            raise BundleError("a sed bundle needs streaming.time_pool, context_frames and stride_frames; re-export it") from None

    @property
    def keyword_labels(self) -> tuple[str, ...]:
        """Labels that can fire a detection (not ``_silence_`` / ``_unknown_``)."""
        return tuple(lab for lab in self.labels if not (lab.startswith("_") and lab.endswith("_")))
