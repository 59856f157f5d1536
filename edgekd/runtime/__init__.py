"""The on-device runtime: numpy at import time; each engine imported lazily in its adapter."""

from edgekd.runtime.detector import Detector, Stream, load_model
from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
from edgekd.runtime.postprocess import Detection, KwsPostprocessConfig

__all__ = ["Detection", "Detector", "FrontendParams", "KwsPostprocessConfig", "LogMelFrontend", "Stream", "load_model"]
