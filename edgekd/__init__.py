"""edgekd: distil, quantize and run always-on audio models on small boards.

The top-level package is the public runtime API only and imports no torch:
``load_model(bundle) -> KwsDetector | SedDetector`` (both meet the ``Detector`` protocol);
``KwsDetector.create_stream() -> KwsStream``; ``KwsStream.accept_waveform(samples) -> list[Detection]``.
"""

from edgekd.runtime import Detection, Detector, KwsDetector, KwsStream, load_model
from edgekd.runtime.sed_stream import SedDetector

__all__ = ["Detection", "Detector", "KwsDetector", "KwsStream", "SedDetector", "load_model", "__version__"]
__version__ = "0.1.0"
