"""firmware_bridge: get bundles onto boards (device closure: stdlib and numpy only at import time).

Today it holds the C-array writer for microcontroller firmware; deploying over SSH is tracked in the
firmware_bridge issue.
"""

from firmware_bridge.c_array import c_array_source

__all__ = ["c_array_source"]
