"""Canonical request paths: the one form that policy matching and the upstream both see.

Owns the translation of a raw request-target into `(path, query)`. One percent-decoding pass
of unreserved characters, dot segments removed, duplicate slashes folded. Anything a permissive
backend could read differently from us (encoded `/` or `\\`, raw `\\`, NUL and other control
characters, invalid UTF-8, `;` path parameters, malformed escapes) is refused with `BadPath`
rather than guessed at. Never returns a path that the caller should decode again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["BadPath", "CanonicalTarget", "canonicalize"]

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%(?P<hex>[0-9A-Fa-f]{2})")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Characters allowed raw in a path by RFC 3986 (pchar + "/"), except ";" which we refuse.
_RAW_OK = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,=:@/%]*")


class BadPath(ValueError):
    """The request-target is ambiguous or malformed; answer 400. `reason` is machine-readable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CanonicalTarget:
    path: str
    query: str  # raw query string without "?", "" when absent

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


def canonicalize(raw_target: str) -> CanonicalTarget:
    """Canonicalize an origin-form request-target such as `/a/./b%2Dc?x=1`."""
    path, sep, query = raw_target.partition("?")
    if "#" in path:
        path = path.partition("#")[0]
    if not path.startswith("/"):
        raise BadPath("not_origin_form")
    if "\\" in path:
        raise BadPath("backslash")
    if ";" in path:
        raise BadPath("path_parameter")
    if not _RAW_OK.fullmatch(path):
        raise BadPath("invalid_character")
    if _BAD_ESCAPE.search(path):
        raise BadPath("bad_escape")
    _check_escapes(path)
    decoded = _ESCAPE.sub(_decode_unreserved, path)
    return CanonicalTarget(_normalize_segments(decoded), query if sep else "")


def _check_escapes(path: str) -> None:
    octets = bytearray()
    for part in re.split(r"(%[0-9A-Fa-f]{2})", path):
        if part.startswith("%") and len(part) == 3:
            octet = int(part[1:], 16)
            if octet in (0x2F, 0x5C):
                raise BadPath("encoded_separator")
            if octet < 0x20 or octet == 0x7F:
                raise BadPath("control_character")
            octets.append(octet)
        else:
            octets.extend(part.encode("ascii"))
    try:
        octets.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("invalid_utf8") from None


def _decode_unreserved(match: re.Match[str]) -> str:
    octet = int(match["hex"], 16)
    if octet in _UNRESERVED:
        return chr(octet)
    return "%" + match["hex"].upper()


def _normalize_segments(path: str) -> str:
    """Fold duplicate slashes and remove dot segments (RFC 3986 5.2.4), keeping a trailing /."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif seg == ".":
            if last:
                out.append("")
        elif seg == "":
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)
