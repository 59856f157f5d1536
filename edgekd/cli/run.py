"""``edgekd run``: stream audio through a bundle and print detections as JSON lines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgekd.cli.common import friendly_errors, notice

__all__ = ["run", "postprocess_overrides"]


def postprocess_overrides(
    threshold: float | None, stride_ms: int | None, smooth_ms: int | None, refractory_ms: int | None
) -> dict[str, Any]:
    pairs = {"threshold": threshold, "stride_ms": stride_ms, "smooth_ms": smooth_ms, "refractory_ms": refractory_ms}
    return {k: v for k, v in pairs.items() if v is not None}


@friendly_errors
def run(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (holds manifest.json).")],
    wav: Annotated[Optional[Path], typer.Option("--wav", help="WAV file to stream through the model.")] = None,
    backend: Annotated[str, typer.Option(help="Inference backend: auto, onnx or litert.")] = "auto",
    threads: Annotated[int, typer.Option(help="Inference threads (1 suits always-on work).")] = 1,
    chunk_ms: Annotated[int, typer.Option(help="Feed the stream in chunks of this many ms (results do not depend on it).")] = 80,
    threshold: Annotated[Optional[float], typer.Option(help="Override the detection threshold for every keyword.")] = None,
    stride_ms: Annotated[Optional[int], typer.Option(help="Override the inference stride.")] = None,
    smooth_ms: Annotated[Optional[int], typer.Option(help="Override the posterior smoothing window.")] = None,
    refractory_ms: Annotated[Optional[int], typer.Option(help="Override the time after a detection during which none fires.")] = None,
    strict: Annotated[bool, typer.Option(help="Refuse audio at another sample rate instead of resampling it.")] = False,
) -> None:
    """Stream a WAV through BUNDLE; print one JSON line per detection: {"t_ms":..., "label":..., "score":...}."""
    import sys

    from edgekd.errors import ConfigError
    from edgekd.runtime.detector import load_model
    from edgekd.runtime.wav import load_audio

    if wav is None:
        raise ConfigError("give an audio source: --wav FILE")
    if chunk_ms <= 0:
        raise ConfigError("--chunk-ms must be > 0")
    det = load_model(bundle, backend=backend, threads=threads,
                     postprocess=postprocess_overrides(threshold, stride_ms, smooth_ms, refractory_ms))
    audio = load_audio(wav, det.manifest.sample_rate, strict=strict, notice=notice)
    stream = det.create_stream()
    step = max(1, det.manifest.sample_rate * chunk_ms // 1000)
    count = 0
    for start in range(0, audio.shape[0], step):
        for d in stream.accept_waveform(audio[start : start + step]):
            sys.stdout.write(d.to_json() + "\n")
            sys.stdout.flush()
            count += 1
    notice(f"{stream.audio_seconds:.2f} s of audio, {count} detection(s)")
