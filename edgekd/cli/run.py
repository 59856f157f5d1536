"""``edgekd run``: stream audio (WAV, stdin or a microphone) through a bundle; print detections as JSON lines."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgekd.cli.common import friendly_errors, notice, positive, unit

__all__ = ["run", "devices", "postprocess_overrides"]


def postprocess_overrides(
    threshold: float | None, stride_ms: int | None, smooth_ms: int | None, refractory_ms: int | None
) -> dict[str, Any]:
    pairs = {"threshold": threshold, "stride_ms": stride_ms, "smooth_ms": smooth_ms, "refractory_ms": refractory_ms}
    out: dict[str, Any] = {k: v for k, v in pairs.items() if v is not None}
    if threshold is not None:
        out["thresholds"] = {}  # for every keyword: a bundle's per-label thresholds (a wake word's) would win otherwise
    return out


@friendly_errors
def run(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (holds manifest.json).")],
    wav: Annotated[Optional[Path], typer.Option("--wav", help="WAV file to stream through the model.")] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read raw s16le mono PCM at the model's rate from stdin (arecord | edgekd run).")] = False,
    mic: Annotated[bool, typer.Option("--mic", help="Listen to a microphone (PyAudio) until Ctrl-C or --duration.")] = False,
    device: Annotated[Optional[str], typer.Option(help="Microphone: index or part of the name (see `edgekd devices`).")] = None,
    duration: Annotated[Optional[float], typer.Option(callback=positive, help="Stop after this many seconds of audio (any source).")] = None,
    backend: Annotated[str, typer.Option(help="Inference backend: auto, onnx or litert.")] = "auto",
    mode: Annotated[str, typer.Option(help="auto (streaming-state model when the bundle has one), stream, or whole (whole window per inference).")] = "auto",
    threads: Annotated[int, typer.Option(min=1, max=64, help="Inference threads (1 suits always-on work).")] = 1,
    chunk_ms: Annotated[int, typer.Option(min=1, max=60000, help="Audio chunk size in ms (results do not depend on it).")] = 80,
    threshold: Annotated[Optional[float], typer.Option(callback=unit, help="Override the detection threshold for every keyword "
                                                                           "(of a two-stage bundle: the verifier's score).")] = None,
    stride_ms: Annotated[Optional[int], typer.Option(min=1, help="Override the inference stride.")] = None,
    smooth_ms: Annotated[Optional[int], typer.Option(min=0, help="Override the posterior smoothing window.")] = None,
    refractory_ms: Annotated[Optional[int], typer.Option(min=0, help="Override the time after a detection during which none fires.")] = None,
    strict: Annotated[bool, typer.Option(help="Refuse a WAV at another sample rate instead of resampling it.")] = False,
) -> None:
    """Stream audio through BUNDLE; print one JSON line per detection:
    {"t_ms": audio time, "label": ..., "score": ..., "latency_ms": compute time from the chunk's arrival}.
    A sound-event (sed) bundle prints {"onset_ms", "label", "score", "event": "onset"} when an event opens and
    {"onset_ms", "offset_ms", "label", "score"} when it closes.

    A summary (audio seconds, detections, overflows, CPU ms per audio second) goes to stderr at the end
    and on Ctrl-C.
    """
    from edgekd.core.errors import ConfigError
    from edgekd.runtime.audio import MicSource, RawPcmSource, WavFileSource, stdin_binary
    from edgekd.runtime.detector import load_model

    if sum((wav is not None, stdin, mic)) != 1:
        raise ConfigError("give exactly one audio source: --wav FILE, --stdin or --mic")
    if chunk_ms <= 0:
        raise ConfigError("--chunk-ms must be > 0")
    det = load_model(bundle, backend=backend, threads=threads, mode=mode,
                     postprocess=postprocess_overrides(threshold, stride_ms, smooth_ms, refractory_ms))
    sr = det.manifest.sample_rate
    chunk = max(1, sr * chunk_ms // 1000)
    if wav is not None:
        source: Any = WavFileSource(wav, sr, chunk, strict=strict, notice=notice)  # streamed from disk: constant memory
    elif stdin:
        source = RawPcmSource(stdin_binary(), sr, chunk)
    else:
        source = MicSource(sr, chunk, device=device)
        notice(f"listening on {source.device_name} at {sr} Hz; Ctrl-C to stop")
    stream = det.create_stream()
    count = 0
    limit = int(duration * sr) if duration else None
    cpu0 = time.process_time()
    interrupted = False
    try:
        for piece in source:
            x = piece.samples if limit is None else piece.samples[: max(0, limit - int(stream.audio_seconds * sr))]
            for d in stream.accept_waveform(x):
                out = dict(d.to_dict(), latency_ms=round((time.perf_counter() - piece.arrived) * 1000.0, 3))
                sys.stdout.write(json.dumps(out) + "\n")
                sys.stdout.flush()
                count += 1
            if limit is not None and stream.audio_seconds * sr >= limit:
                break
        for d in stream.finish():  # SED: the events still open at the end of the audio
            sys.stdout.write(json.dumps(d.to_dict()) + "\n")
            count += 1
    except KeyboardInterrupt:
        interrupted = True
    finally:
        source.close()
    secs = stream.audio_seconds
    cpu_ms = 1000.0 * (time.process_time() - cpu0) / secs if secs > 0 else 0.0
    notice(f"{'stopped: ' if interrupted else ''}{secs:.2f} s of audio, {count} detection(s), {source.overflows} overflow(s), "
           f"{cpu_ms:.2f} CPU ms per audio second")


@friendly_errors
def devices() -> None:
    """List the audio input devices PortAudio sees (index, channels, default rate, name)."""
    from edgekd.runtime.audio import list_input_devices

    devs = list_input_devices()
    if not devs:
        notice("no input devices (is a microphone connected? is the user in the 'audio' group?)")
        raise typer.Exit(1)
    for d in devs:
        print(f"{d['index']:3d}  {d['channels']} ch  {d['default_rate']} Hz  {d['name']}")
