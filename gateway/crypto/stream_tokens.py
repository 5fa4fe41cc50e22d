"""Streaming replacement of field tokens in a response body, and the escapers it uses.

`TokenReplacer` finds `gwe1.` tokens in a byte stream, also when a chunk boundary splits one,
holding back at most one maximal token's worth of bytes. Each token that opens is replaced by
its plaintext escaped for the response's content type; every other token stays as it is and is
counted (foreign: not ours to open; invalid: failed authentication). Pure: no I/O, no aiohttp,
never logs and never counts or reports plaintext.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from gateway.crypto.errors import DecryptError
from gateway.crypto.token import MAX_TOKEN_LEN, TOKEN_PREFIX, TOKEN_RE_BYTES

__all__ = [
    "ReplaceCounts",
    "TokenReplacer",
    "escape_html",
    "escape_json_string",
    "escape_text",
    "escaper_for",
]

_PREFIX = TOKEN_PREFIX.encode("ascii")
# A token candidate: the prefix and the whole run of token alphabet after it.
_CANDIDATE = re.compile(rb"gwe1\.[A-Za-z0-9_-]*")
_RUN = re.compile(rb"[A-Za-z0-9_-]*")
_JSON_EXTRA = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def escape_html(plaintext: bytes) -> bytes:
    """HTML text and attribute-safe (quotes escaped too)."""
    text = plaintext.decode("utf-8", errors="replace")
    return html.escape(text, quote=True).encode("utf-8")


def escape_json_string(plaintext: bytes) -> bytes:
    """The inside of a JSON string; also safe when the JSON is embedded in HTML <script>."""
    text = plaintext.decode("utf-8", errors="replace")
    return json.dumps(text, ensure_ascii=False)[1:-1].translate(_JSON_EXTRA).encode("utf-8")


def escape_text(plaintext: bytes) -> bytes:
    """Plain text: the bytes as they are."""
    return plaintext


def escaper_for(content_type: str) -> Callable[[bytes], bytes] | None:
    """The escaper for a textual media type, or None where tokens must not be replaced."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("text/html", "application/xhtml+xml") or media.endswith("xml"):
        return escape_html
    if media == "application/json" or media.endswith("+json"):
        return escape_json_string
    if media == "text/plain":
        return escape_text
    return None


@dataclass
class ReplaceCounts:
    replaced: int = 0
    foreign: int = 0
    invalid: int = 0


class TokenReplacer:
    """Feed response chunks, get them back with tokens replaced.

    `open_token(token)` returns the plaintext, None when the token is not this user's to open
    (foreign), or raises DecryptError when it fails authentication (invalid). Other exceptions
    (a store outage) propagate so the caller fails closed.
    """

    def __init__(
        self,
        open_token: Callable[[str], bytes | None],
        escape: Callable[[bytes], bytes],
    ) -> None:
        self._open = open_token
        self._escape = escape
        self._pending = b""
        # True after an over-long run was passed through at a chunk end: its continuation in
        # the next chunk is still that run, not a place where a token can start.
        self._in_run = False
        self.counts = ReplaceCounts()

    @property
    def held_back(self) -> int:
        return len(self._pending)

    def _replacement(self, candidate: bytes) -> bytes:
        if not TOKEN_RE_BYTES.fullmatch(candidate):
            return candidate
        try:
            plaintext = self._open(candidate.decode("ascii"))
        except DecryptError:
            self.counts.invalid += 1
            return candidate
        if plaintext is None:
            self.counts.foreign += 1
            return candidate
        self.counts.replaced += 1
        return self._escape(plaintext)

    def _process(self, data: bytes, final: bool) -> bytes:
        out: list[bytes] = []
        pos = 0
        if self._in_run:
            run = _RUN.match(data)
            pos = run.end() if run else 0
            out.append(data[:pos])
            self._in_run = pos == len(data) and not final
        for match in _CANDIDATE.finditer(data, pos):
            start, end = match.span()
            # A run touching the end may continue in the next chunk; hold it unless it is
            # already too long to ever be a token.
            if end == len(data) and not final and end - start <= MAX_TOKEN_LEN:
                out.append(data[pos:start])
                self._pending = data[start:]
                return b"".join(out)
            out.append(data[pos:start])
            out.append(self._replacement(match.group()))
            pos = end
            if end == len(data) and not final:
                self._in_run = True
        tail = data[pos:]
        keep = 0
        if not final:
            # A chunk ending in "g", "gw", "gwe" or "gwe1" may be the start of a token.
            for n in range(len(_PREFIX) - 1, 0, -1):
                if tail.endswith(_PREFIX[:n]):
                    keep = n
                    break
        out.append(tail[: len(tail) - keep])
        self._pending = tail[len(tail) - keep :]
        return b"".join(out)

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else bytes(chunk)
        return self._process(data, final=False)

    def finish(self) -> bytes:
        data, self._pending = self._pending, b""
        return self._process(data, final=True)
