"""edgekd: distil, quantize and run always-on audio models on small boards.

The top-level package is the public runtime API only and imports no torch:
``load_model(bundle) -> Detector``; ``Detector.create_stream() -> Stream``;
``Stream.accept_waveform(samples) -> list[Detection]``.
"""

from edgekd.runtime import Detection, Detector, Stream, load_model

__all__ = ["Detection", "Detector", "Stream", "load_model", "__version__"]
__version__ = "0.1.0"
