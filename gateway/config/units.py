"""Parsing of the human units used in gateway.yaml: durations (`30s 15m 12h 7d 250ms`) and
sizes (`10MiB`, `512KB`, `1GiB`, `100B`). Pure functions; errors say what was expected."""

from __future__ import annotations

import re

__all__ = ["parse_duration", "parse_size", "format_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_DURATION_FACTOR = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_SIZE_FACTOR = {
    None: 1,
    "B": 1,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}


def parse_duration(value: object) -> float:
    """Seconds from `30s`-style text; bare numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 15m, 12h, 7d or 250ms")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("expected a non-negative duration")
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return float(m[1]) * _DURATION_FACTOR[m[2]]
    raise ValueError("expected a duration like 30s, 15m, 12h, 7d or 250ms")


def parse_size(value: object) -> int:
    """Bytes from `10MiB`-style text; bare integers are bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 10MiB, 512KiB, 1GiB or 100B")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("expected a non-negative size")
        return value
    if isinstance(value, str) and (m := _SIZE.match(value)):
        return int(m[1]) * _SIZE_FACTOR[m[2]]
    raise ValueError("expected a size like 10MiB, 512KiB, 1GiB or 100B")


def format_duration(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        factor = _DURATION_FACTOR[unit]
        if seconds >= factor and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    return f"{int(seconds * 1000)}ms"
