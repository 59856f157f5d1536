"""The base layer under every other package: errors, atomic file writes, child processes, progress, units.

Standard library only (``units`` and nothing else also names numbers); safe on a board.
"""
