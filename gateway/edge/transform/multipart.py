"""Streaming rewrite of `multipart/form-data` request bodies for `form_fields` encryption.

The body is parsed as it arrives and written out again as a new multipart body under a fresh
random boundary: a named text field becomes a `gwe1.` token, a named file part becomes an
envelope (`application/vnd.portcullis.envelope`, the part's original Content-Type inside the
envelope header), every other part is copied. Only a text field's value is held in memory
(at most one token's worth); file parts flow through segment by segment.

Strict on purpose, because the upstream must read the names the gateway read: no preamble, no
transport padding, CRLF line ends, exactly one `Content-Disposition: form-data` per part with
one `name` and at most one `filename` (no other parameters, no `name*`), quoted values without
`"`, `\\` or control characters, no name starting with `/` (which aiohttp strips). The
Content-Disposition of every part is written again from what was parsed, so an ambiguity that
survived would still not reach the upstream. Anything else raises FieldError (the caller
answers 400; nothing is forwarded as plaintext). Never logs, never puts a value into an error
message.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass

from gateway.crypto.envelope import ENVELOPE_CONTENT_TYPE, EnvelopeEncryptor
from gateway.crypto.errors import FieldError
from gateway.crypto.fields import shadows
from gateway.crypto.token import MAX_FIELD_PLAINTEXT

__all__ = [
    "MAX_PARTS",
    "MAX_PART_HEADER",
    "MultipartSealer",
    "boundary_of",
    "rewrite_multipart",
]

MAX_PARTS = 1000
MAX_PART_HEADER = 8 * 1024
MAX_BOUNDARY = 70
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"([^"\\\x00-\x1f\x7f]*)"'
_OWS = r"[ \t]*"
_PARAM = re.compile(rf"{_OWS};{_OWS}({_TCHARS}){_OWS}={_OWS}(?:({_TCHARS})|{_QUOTED}){_OWS}")
_HEADER_NAME = re.compile(_TCHARS)
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BCHARS = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]*[0-9A-Za-z'()+_,\-./:=?]")
_IDENTITY_CTE = frozenset({"7bit", "8bit", "binary"})


def _params(text: str) -> dict[str, str]:
    """`; a=b; c="d"` -> {"a": "b", "c": "d"}; duplicates and bad syntax are FieldError."""
    out: dict[str, str] = {}
    pos = 0
    text = text.rstrip(" \t")
    while pos < len(text):
        match = _PARAM.match(text, pos)
        if match is None:
            raise FieldError("malformed header parameters")
        name = match.group(1).lower()
        if name in out:
            raise FieldError("duplicate header parameter")
        out[name] = match.group(2) if match.group(2) is not None else match.group(3)
        pos = match.end()
    return out


def boundary_of(content_type: str) -> bytes:
    """The boundary of a `multipart/form-data` Content-Type (RFC 2046 limits)."""
    media, _, rest = content_type.partition(";")
    if media.strip().lower() != "multipart/form-data":
        raise FieldError("not multipart/form-data")
    boundary = _params(";" + rest if rest else "").get("boundary")
    if boundary is None or not 1 <= len(boundary) <= MAX_BOUNDARY:
        raise FieldError("missing or bad multipart boundary")
    if not _BCHARS.fullmatch(boundary):
        raise FieldError("bad multipart boundary")
    return boundary.encode("ascii")


@dataclass(frozen=True, slots=True)
class _Part:
    name: str
    filename: str | None
    content_type: str | None
    others: tuple[str, ...]

    def disposition(self) -> str:
        value = f'form-data; name="{self.name}"'
        if self.filename is not None:
            value += f'; filename="{self.filename}"'
        return "Content-Disposition: " + value


def _parse_part_headers(block: bytes) -> _Part:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise FieldError("part headers are not UTF-8") from None
    disposition: str | None = None
    content_type: str | None = None
    others: list[str] = []
    lines = text.split("\r\n")
    if len(lines) > 32:
        raise FieldError("too many part headers")
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not _HEADER_NAME.fullmatch(name) or _BAD_VALUE.search(value):
            raise FieldError("malformed part header")
        value = value.strip(" \t")
        low = name.lower()
        if low == "content-disposition":
            if disposition is not None:
                raise FieldError("duplicate Content-Disposition")
            disposition = value
        elif low == "content-type":
            if content_type is not None:
                raise FieldError("duplicate part Content-Type")
            content_type = value
            others.append(f"Content-Type: {value}")
        else:
            if low == "content-transfer-encoding" and value.lower() not in _IDENTITY_CTE:
                raise FieldError("encoded part")
            others.append(f"{name}: {value}")
    if disposition is None:
        raise FieldError("part without Content-Disposition")
    kind, _, rest = disposition.partition(";")
    if kind.strip().lower() != "form-data":
        raise FieldError("part is not form-data")
    params = _params(";" + rest if rest else "")
    if "name" not in params or set(params) - {"name", "filename"}:
        raise FieldError("part needs one name and at most a filename")
    if params["name"].startswith("/"):
        # SECURITY: aiohttp strips leading `/` from a quoted name: `"/title"` is `title` there.
        raise FieldError("part name a permissive parser reads differently")
    return _Part(params["name"], params.get("filename"), content_type, tuple(others))


class _Input:
    """A byte buffer over the body's chunks. Starts with CRLF so that the first boundary,
    which has none in front, is found by the same delimiter search as the others."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.buf = bytearray(b"\r\n")

    async def fill(self) -> bool:
        async for chunk in self._chunks:
            if chunk:
                self.buf += chunk
                return True
        return False

    async def peek(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not await self.fill():
                raise FieldError("truncated multipart body")
        return bytes(self.buf[:n])

    async def exactly(self, n: int) -> bytes:
        out = await self.peek(n)
        del self.buf[:n]
        return out

    async def until(self, sep: bytes, limit: int) -> bytes:
        start = 0
        while True:
            at = self.buf.find(sep, start)
            if at >= 0:
                if at > limit:
                    raise FieldError("part headers too large")
                out = bytes(self.buf[:at])
                del self.buf[: at + len(sep)]
                return out
            if len(self.buf) > limit + len(sep):
                raise FieldError("part headers too large")
            start = max(0, len(self.buf) - len(sep) + 1)
            if not await self.fill():
                raise FieldError("truncated multipart body")

    async def section(self, delimiter: bytes) -> AsyncIterator[bytes]:
        """The bytes before the next delimiter (which is consumed), as they arrive."""
        keep = len(delimiter) - 1
        while True:
            at = self.buf.find(delimiter)
            if at >= 0:
                if at:
                    yield bytes(self.buf[:at])
                del self.buf[: at + len(delimiter)]
                return
            if len(self.buf) > keep:
                yield bytes(self.buf[: len(self.buf) - keep])
                del self.buf[: len(self.buf) - keep]
            if not await self.fill():
                raise FieldError("truncated multipart body")

    async def drain(self) -> None:
        self.buf.clear()
        async for _ in self._chunks:
            pass


@dataclass(frozen=True, slots=True)
class MultipartSealer:
    """What the rewrite needs from the caller: the field names, and the user's key recipes."""

    names: Collection[str]
    seal: Callable[[bytes], str]
    encryptor: Callable[[str], EnvelopeEncryptor]
    counted: Callable[[int], None]


def new_boundary() -> str:
    return "portcullis-" + secrets.token_hex(16)


async def rewrite_multipart(
    chunks: AsyncIterator[bytes], boundary: bytes, out_boundary: str, sealer: MultipartSealer
) -> AsyncIterator[bytes]:
    """The rewritten body under `out_boundary`; FieldError (possibly mid-stream) if malformed."""
    src = _Input(chunks)
    delimiter = b"\r\n--" + boundary
    if await src.exactly(len(delimiter)) != delimiter:
        raise FieldError("multipart body does not start with its boundary")
    out_delim = b"--" + out_boundary.encode("ascii")
    parts = 0
    while True:
        after = await src.peek(2)
        if after == b"--":
            del src.buf[:2]
            break
        if after != b"\r\n":
            raise FieldError("bad multipart delimiter")
        parts += 1
        if parts > MAX_PARTS:
            raise FieldError("too many multipart parts")
        # The CRLF after the delimiter stays, so a part without headers reads as an empty block.
        block = await src.until(b"\r\n\r\n", MAX_PART_HEADER)
        part = _parse_part_headers(block[2:])
        if shadows(part.name, sealer.names):
            raise FieldError("part name another parser reads as a designated field")
        yield (b"" if parts == 1 else b"\r\n") + out_delim + b"\r\n"
        body = src.section(delimiter)
        if part.name not in sealer.names:
            head = "\r\n".join((part.disposition(), *part.others))
            yield head.encode("utf-8") + b"\r\n\r\n"
            async for data in body:
                yield data
        elif part.filename is None:
            yield part.disposition().encode("utf-8") + b"\r\n\r\n"
            yield await _seal_text(body, sealer)
        else:
            head = f"{part.disposition()}\r\nContent-Type: {ENVELOPE_CONTENT_TYPE}\r\n\r\n"
            yield head.encode("utf-8")
            async for data in _seal_file(body, part.content_type or "", sealer):
                yield data
    await src.drain()
    yield (b"" if parts == 0 else b"\r\n") + out_delim + b"--\r\n"


async def _seal_text(body: AsyncIterator[bytes], sealer: MultipartSealer) -> bytes:
    value = bytearray()
    async for data in body:
        value += data
        if len(value) > MAX_FIELD_PLAINTEXT:
            raise FieldError("field value too large")
    token = sealer.seal(bytes(value))
    sealer.counted(len(value))
    return token.encode("ascii")


async def _seal_file(
    body: AsyncIterator[bytes], content_type: str, sealer: MultipartSealer
) -> AsyncIterator[bytes]:
    try:
        encryptor = sealer.encryptor(content_type)
    except ValueError:
        raise FieldError("part content type cannot be kept in an envelope") from None
    yield encryptor.header()
    async for data in body:
        out = encryptor.update(data)
        sealer.counted(len(data))
        if out:
            yield bytes(out)
    yield encryptor.finish()
