"""Argument checks shared by the store backends.

Owns the rules every backend applies before touching storage: what a `kind` may look like,
what a TTL or window may be. It never sees values and never formats one into a message.
"""

from __future__ import annotations

import re

__all__ = ["check_kind", "check_ttl", "check_window"]

_KIND = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_kind(kind: str) -> str:
    """A kind is a short ASCII name; `:` is reserved as the separator of the Redis key layout."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValueError("store kind must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return kind


def check_ttl(ttl: float | None) -> float | None:
    if ttl is None:
        return None
    if not ttl > 0:
        raise ValueError("store ttl must be a positive number of seconds or None")
    return float(ttl)


def check_window(window: float) -> float:
    if not window > 0:
        raise ValueError("counter window must be a positive number of seconds")
    return float(window)
