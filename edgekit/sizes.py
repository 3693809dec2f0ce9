"""Parse and format byte sizes: `65536`, `64KB` (1000-based), `64KiB` (1024-based), `0.5MB`."""

from __future__ import annotations

import math
import re

_UNITS = {
    "": 1, "b": 1, "bytes": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_LARGEST = 1000**5
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | float | str) -> int:
    """Return a size in bytes.

    >>> parse_size("64KB"), parse_size("64KiB"), parse_size("0.5MB"), parse_size(65536)
    (64000, 65536, 500000, 65536)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 65536, 64KB, 64KiB or 0.5MB, got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        match = _PATTERN.match(str(value))
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _UNITS:
            raise ValueError(f"expected a size such as 65536, 64KB, 64KiB or 0.5MB "
                             f"(units: B, KB, KiB, MB, MiB, GB, GiB), got {value!r}")
        number = float(match.group(1))
    size = number * _UNITS[unit]
    if not math.isfinite(size) or size > _LARGEST:
        raise ValueError(f"a size must be a finite number of bytes below 1 PB, got {value!r}")
    if size < 0:
        raise ValueError(f"a size cannot be negative, got {value!r}")
    return int(round(size))


def format_size(n_bytes: int | float | None) -> str:
    """Human-readable size with binary units, e.g. `12.3 KiB`; `-` when unknown."""
    if n_bytes is None:
        return "-"
    n = float(n_bytes)
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024 or unit == "MiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} MiB"
