"""``edgekd export``: checkpoints to bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.cli.common import friendly_errors, notice, unit

app = typer.Typer(help="Export a checkpoint to a bundle the runtime loads.", no_args_is_help=True)


@app.command("onnx")
@friendly_errors
def onnx_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint from `edgekd train`.")],
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write (replaced atomically).")],
    golden_wav: Annotated[Optional[Path], typer.Option(help="A WAV to store with its detections as the bundle's stream self-test.")] = None,
    threshold: Annotated[Optional[float], typer.Option(callback=unit, help="Detection threshold stored in the manifest.")] = None,
    stride_ms: Annotated[Optional[int], typer.Option(min=1, help="Inference stride stored in the manifest (streaming-state: any multiple of 10 ms).")] = None,
    int8: Annotated[bool, typer.Option("--int8", help="int8 QDQ model from a QAT checkpoint (`edgekd train qat`).")] = False,
    ptq: Annotated[Optional[Path], typer.Option(help="Post-training int8 quantization (onnxruntime), calibrated on WAVs in this folder.")] = None,
) -> None:
    """Write BUNDLE: model.onnx (fp32, or int8 with --int8 / --ptq), manifest.json (sha256 of every file), golden/."""
    from edgekd.export.onnx import export_onnx

    pp = {k: v for k, v in (("threshold", threshold), ("stride_ms", stride_ms)) if v is not None} or None
    calib = None
    if ptq is not None:
        from edgekd.export.int8 import calibration_features
        from edgekd.train.checkpoint import Checkpoint

        ck = Checkpoint.load(checkpoint)
        calib = calibration_features(ptq, ck.frontend, ck.input_frames)
    m = export_onnx(checkpoint, out, golden_wav=golden_wav, postprocess=pp, int8=int8, ptq_calibration=calib)
    size = (out / m.model_file).stat().st_size
    notice(f"wrote {out}: {m.model_file} ({m.quantization}) {size / 1024:.1f} KiB, {m.provenance['params']} params, "
           f"torch vs ONNX max abs {m.provenance['torch_vs_onnx_max_abs']:.1e}")


@app.command("tflite")
@friendly_errors
def tflite_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="The checkpoint the bundle was exported from.")],
    bundle: Annotated[Path, typer.Option("--bundle", help="Bundle folder to add model.tflite to (rewritten atomically).")],
    int8: Annotated[bool, typer.Option("--int8", help="Full-integer int8 (int8 input and output), calibrated on --calib.")] = False,
    calib: Annotated[Optional[Path], typer.Option(help="Folder of WAVs for int8 calibration (e.g. the training data).")] = None,
) -> None:
    """Add model.tflite (LiteRT) to BUNDLE: fp32, or full-integer int8 with a representative dataset.

    Needs the host-only converter extra: pip install -c constraints.txt "edgekd\\[tflite]".
    """
    from edgekd.core.errors import ConfigError
    from edgekd.export.tflite import add_tflite_to_bundle

    calibration = None
    if int8:
        if calib is None:
            raise ConfigError("--int8 needs --calib DIR (WAVs for the representative dataset)")
        from edgekd.export.int8 import calibration_features
        from edgekd.train.checkpoint import Checkpoint

        ck = Checkpoint.load(checkpoint)
        calibration = calibration_features(calib, ck.frontend, ck.input_frames)
    m = add_tflite_to_bundle(checkpoint, bundle, calibration=calibration)
    size = (bundle / m.tflite_file).stat().st_size
    notice(f"wrote {bundle / m.tflite_file} ({'int8' if int8 else 'fp32'}) {size / 1024:.1f} KiB")


@app.command("tflite-stream")
@friendly_errors
def tflite_stream_cmd(
    bundle: Annotated[Path, typer.Argument(help="An int8 streaming-state bundle with model.tflite (rewritten atomically).")],
    calib: Annotated[Path, typer.Option(help="Folder of WAVs for the ranges the ONNX graph keeps in float (input frames, pooled means).")],
) -> None:
    """Add model_stream.tflite: the LiteRT twin of BUNDLE's int8 streaming-state graph, made from that ONNX graph (no
    checkpoint needed) with the same integer weights and activation ranges, checked against it hop by hop.

    `edgekd export tflite --int8` does this by itself; this command serves bundles whose checkpoint is gone.
    Needs the host-only converter extra: pip install -c constraints.txt "edgekd\\[tflite]".
    """
    from edgekd.export.int8 import calibration_features
    from edgekd.export.tflite_stream import add_tflite_stream_to_bundle
    from edgekd.runtime.manifest import ModelManifest

    m = ModelManifest.load(bundle)
    calibration = calibration_features(calib, m.frontend, m.window_frames)
    m = add_tflite_stream_to_bundle(bundle, calibration=calibration, calibration_source=f"{calib} ({calibration.shape[0]} WAVs)")
    st = m.kws_streaming
    assert st is not None
    size = (bundle / st.tflite_model_file).stat().st_size
    notice(f"wrote {bundle / st.tflite_model_file} (int8 streaming, {size / 1024:.1f} KiB); "
           f"largest difference from the ONNX step {m.provenance['tflite_stream_vs_onnx_max_steps']:g} output steps")


@app.command("c-array")
@friendly_errors
def c_array_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder holding a .tflite model (int8 for microcontrollers).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for model_data.h, model_data.cc and model_settings.h.")],
    symbol: Annotated[str, typer.Option(help="C symbol of the model array (its length is SYMBOL_len).")] = "g_model",
) -> None:
    """Write the bundle's .tflite as a 16-byte aligned C array (model_data.h/.cc) plus model_settings.h (frontend
    parameters, labels, tensor shapes, int8 scale and zero point) for TensorFlow Lite Micro firmware."""
    from edgekd.core.errors import ConfigError
    from firmware_bridge.c_array import is_c_identifier
    from firmware_bridge.firmware import write_firmware_sources

    if not is_c_identifier(symbol):
        raise ConfigError(f"--symbol {symbol!r} is not a C identifier (letters, digits and _, not starting with a digit)")
    written = write_firmware_sources(bundle, out, symbol)
    for p in written:
        notice(f"wrote {p}")
