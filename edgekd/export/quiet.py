"""torch's ONNX exporters without the warnings they print on every export of edgekd's graphs.

What is silenced, for the length of one export only, says nothing a user of edgekd can act on:

- the dynamo exporter logs that torchvision is not installed (it registers torchvision's detection ops when it can);
- torch's own pytree code trips a deprecation of torch's (``isinstance(treespec, LeafSpec)``);
- the TorchScript tracer warns about the streaming student's ``pad_to`` shape test, which is a no-op for the full
  windows every export traces (each export is then checked against torch by its golden parity check).

Any other warning still reaches the user.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_torch_export"]

_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


@contextmanager
def quiet_torch_export() -> Iterator[None]:
    """A ``with`` block around ``torch.onnx.export`` that drops the three known, empty warnings (module docstring)."""
    import torch

    log = logging.getLogger(_REGISTRATION_LOGGER)
    level = log.level
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"edgekd\.train\.models\.students\.dscnn_stream")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
        log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            log.setLevel(level)
