"""Turn a model file into a C array (aligned, const) for firmware that embeds the model."""

from __future__ import annotations

import re

from edgekd.core.errors import ConfigError

__all__ = ["c_array_source", "is_c_identifier"]


def is_c_identifier(symbol: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", symbol) is not None


def c_array_source(data: bytes, symbol: str = "g_model", alignment: int = 16) -> tuple[str, str]:
    """Return ``(header, source)`` text declaring ``symbol`` (bytes) and ``symbol_len``."""
    if not is_c_identifier(symbol):
        raise ConfigError(f"--symbol {symbol!r} is not a C identifier; use letters, digits and _ (not first)")
    guard = f"EDGEKD_{symbol.upper()}_H_"
    header = (
        f"#ifndef {guard}\n#define {guard}\n\n"
        f"extern const unsigned char {symbol}[];\nextern const unsigned int {symbol}_len;\n\n#endif  // {guard}\n"
    )
    rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 12]) for i in range(0, len(data), 12)]
    body = ",\n  ".join(rows)
    source = (
        f'#include "{symbol}.h"\n\n'
        f"alignas({alignment}) const unsigned char {symbol}[] = {{\n  {body}\n}};\n"
        f"const unsigned int {symbol}_len = {len(data)};\n"
    )
    return header, source
