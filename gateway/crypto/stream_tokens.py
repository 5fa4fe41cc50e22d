"""Streaming replacement of field tokens in a response body, and the escapers it uses.

`TokenReplacer` finds `gwe1.` tokens in a byte stream, also when a chunk boundary splits one,
holding back at most one maximal token's worth of bytes. Each token that opens is replaced by
its plaintext escaped for the response's content type; every other token stays as it is and is
counted (foreign: not ours to open; invalid: failed authentication). For markup an
`HtmlContext` (`context_for`) follows the bytes and a token opens only where the plaintext is
shown as text or a form value, escaped for that place (refused_context elsewhere). Pure: no
I/O, no aiohttp, never logs and never counts or reports plaintext.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from gateway.crypto.errors import DecryptError
from gateway.crypto.html_context import HtmlContext, escape_html
from gateway.crypto.token import MAX_TOKEN_LEN, MIN_TOKEN_LEN, TOKEN_PREFIX, KeyNeeded

__all__ = [
    "ReplaceCounts",
    "TokenReplacer",
    "context_for",
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


# ASCII that json.dumps leaves as it is and _JSON_EXTRA does not touch.
_JSON_SPECIAL = re.compile(rb'[\x00-\x1f"\\<>&\x80-\xff]')


def escape_json_string(plaintext: bytes) -> bytes:
    """The inside of a JSON string; also safe when the JSON is embedded in HTML <script>."""
    if not _JSON_SPECIAL.search(plaintext):
        return bytes(plaintext)  # nothing to escape (and ASCII, so valid UTF-8)
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


# Charsets whose bytes a browser does not read as ASCII-compatible text: the HTML context
# cannot follow them, so no token is opened there.
_OPAQUE_CHARSETS = (
    "utf-16",
    "utf16",
    "utf-32",
    "ucs-",
    "unicode",
    "iso-2022",
    "csiso2022",
    "utf-7",
    "hz-gb",
    "replacement",
    "iso-10646",
)


def context_for(content_type: str) -> HtmlContext | None:
    """A fresh HTML context for a markup media type (XML rules unless text/html), else None."""
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if escaper_for(media) is not escape_html:
        return None
    context = HtmlContext(xml=media != "text/html")
    for param in params.split(";"):
        key, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if key.strip().lower() == "charset" and charset.startswith(_OPAQUE_CHARSETS):
            context.refuse_all()
    return context


@dataclass
class ReplaceCounts:
    replaced: int = 0
    foreign: int = 0
    invalid: int = 0
    refused_context: int = 0


class TokenReplacer:
    """Feed response chunks, get them back with tokens replaced.

    `open_token(token)` returns the plaintext, None when the token is not this user's to open
    (foreign), or raises DecryptError when it fails authentication (invalid). Other exceptions
    (a store outage) propagate so the caller fails closed. It may raise KeyNeeded (a
    TokenOpener whose key for that version is not loaded yet): the replacer then stops right
    before that token, holds it back, returns what precedes it and sets `wanted` to the
    version; the caller loads the key and calls the same method again (`feed(b"")` or
    `finish()`), which resumes at that token.

    With a `context` (HTML), every upstream byte is fed to it in order and a token is opened
    only where the context gives an escaper; elsewhere it stays as it is (refused_context).
    """

    def __init__(
        self,
        open_token: Callable[[bytes], bytes | None],
        escape: Callable[[bytes], bytes],
        context: HtmlContext | None = None,
    ) -> None:
        self._open = open_token
        self._escape = escape
        self._context = context
        self._pending = b""
        # True after an over-long run was passed through at a chunk end: its continuation in
        # the next chunk is still that run, not a place where a token can start.
        self._in_run = False
        self.counts = ReplaceCounts()
        self.wanted: int | None = None

    @property
    def held_back(self) -> int:
        return len(self._pending)

    def _replacement(self, candidate: bytes) -> bytes:
        # A candidate is the prefix and a maximal run of the token alphabet: it is a token
        # (TOKEN_RE_BYTES) exactly when its length is within the bounds.
        if not MIN_TOKEN_LEN <= len(candidate) <= MAX_TOKEN_LEN:
            return candidate
        escape = self._escape
        if self._context is not None:
            # SECURITY: a token in a URL, script, style or unlisted attribute is never opened,
            # so a copied token cannot carry the viewer's plaintext off the page.
            escape = self._context.escaper()
            if escape is None:
                self.counts.refused_context += 1
                return candidate
        try:
            plaintext = self._open(candidate)
        except DecryptError:
            self.counts.invalid += 1
            return candidate
        if plaintext is None:
            self.counts.foreign += 1
            return candidate
        self.counts.replaced += 1
        return escape(plaintext)

    def _emit(self, out: list[bytes], source: bytes) -> None:
        out.append(source)
        if self._context is not None:
            self._context.feed(source)

    def _process(self, data: bytes, final: bool) -> bytes:
        out: list[bytes] = []
        pos = 0
        if self._in_run:
            run = _RUN.match(data)
            pos = run.end() if run else 0
            self._emit(out, data[:pos])
            self._in_run = pos == len(data) and not final
        for match in _CANDIDATE.finditer(data, pos):
            start, end = match.span()
            # A run touching the end may continue in the next chunk; hold it unless it is
            # already too long to ever be a token.
            if end == len(data) and not final and end - start <= MAX_TOKEN_LEN:
                self._emit(out, data[pos:start])
                self._pending = data[start:]
                return b"".join(out)
            self._emit(out, data[pos:start])
            candidate = match.group()
            try:
                out.append(self._replacement(candidate))
            except KeyNeeded as need:
                # Nothing about this token was counted or fed yet: resume right here.
                self.wanted = need.version
                self._pending = data[start:]
                return b"".join(out)
            if self._context is not None:
                self._context.feed_token(candidate)
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
        self._emit(out, tail[: len(tail) - keep])
        self._pending = tail[len(tail) - keep :]
        return b"".join(out)

    def feed(self, chunk: bytes) -> bytes:
        self.wanted = None
        data = self._pending + chunk if self._pending else bytes(chunk)
        self._pending = b""
        return self._process(data, final=False)

    def finish(self) -> bytes:
        self.wanted = None
        data, self._pending = self._pending, b""
        return self._process(data, final=True)
