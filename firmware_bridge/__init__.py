"""firmware_bridge: get bundles onto boards (device closure: stdlib and numpy only at import time).

- ``ssh``: the system OpenSSH client, quoting, one-line connection errors
- ``probe`` / ``targets``: what a board is, presets, can-it-run checks
- ``deploy``: deploy and rollback (atomic ``current`` switch, board-side self-test before the switch)
- ``board_ops``: the symlink bookkeeping, run on the board by its venv's Python
- ``remote_bench``, ``service``: ``edgekd bench --remote``, the systemd unit
- ``c_array`` / ``firmware``: the model as a C array plus ``model_settings.h`` for TFLite Micro
"""

from firmware_bridge.c_array import c_array_source

__all__ = ["c_array_source"]
