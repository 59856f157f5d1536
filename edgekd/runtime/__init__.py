"""The on-device runtime: numpy at import time; each engine imported lazily in its adapter."""

from edgekd.runtime.detector import Detector, load_model
from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
from edgekd.runtime.kws_post import Detection, KwsPostprocessConfig
from edgekd.runtime.kws_stream import KwsDetector, KwsStream

__all__ = ["Detection", "Detector", "FrontendParams", "KwsDetector", "KwsPostprocessConfig", "KwsStream", "LogMelFrontend", "load_model"]
