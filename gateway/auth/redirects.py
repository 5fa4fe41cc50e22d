"""`next` after login: only ever a same-origin path.

Accepts a printable-ASCII absolute path that no browser could read as another origin, even
after percent-decoding (browsers and upstream apps sometimes decode twice). Anything doubtful
falls back to "/". Pure function, no I/O.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote, urlsplit

__all__ = ["safe_next"]

DEFAULT = "/"
MAX_LENGTH = 2048


def _looks_safe(value: str, *, ascii_only: bool = True) -> bool:
    if not value.startswith("/") or value.startswith("//"):
        return False
    lowest = 0x21 if ascii_only else 0x20  # a decoded %20 is an ordinary path character
    for ch in value:
        if ch == "\\" or ord(ch) < lowest or ord(ch) == 0x7F:
            return False
        if ord(ch) > 0x7E and (ascii_only or unicodedata.category(ch)[0] in "CZ"):
            return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def safe_next(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_LENGTH:
        return DEFAULT
    if not _looks_safe(value):
        return DEFAULT
    decoded = value
    for _ in range(3):  # every decoding a later reader might apply must stay same-origin
        try:
            decoded = unquote(decoded, errors="strict")
        except UnicodeDecodeError:
            return DEFAULT
        if not _looks_safe(decoded, ascii_only=False):
            return DEFAULT
    if value.startswith("/.gateway/login") or value.startswith("/.gateway/logout"):
        return DEFAULT
    return value
