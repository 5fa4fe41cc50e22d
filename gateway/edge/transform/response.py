"""Response side of envelope encryption: a streaming `BodyFilter` per encrypting rule.

`tokens`: every `gwe1.` token in a textual answer is replaced by its plaintext escaped for the
content type (in HTML/XML only where it is shown as text or a form value); tokens the user
cannot open, or that stand elsewhere, stay as they are and are counted in `ex.notes`.
`body`: an envelope is decrypted segment by segment as it arrives. One that fits the bound
(`max_body`, at most BUFFER_LIMIT) is verified whole before the status line goes out, so any
fault is a 502 with no plaintext; a larger one streams verified segments and a later fault
aborts the connection (no final chunk). Never logs plaintext or keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from multidict import CIMultiDict

from gateway.crypto import CryptoError, DecryptError, KeyNotFound
from gateway.crypto.datakeys import DataKeys
from gateway.crypto.envelope import (
    DEFAULT_SEGMENT_SIZE,
    TAG_SIZE,
    EnvelopeDecryptor,
    parse_header,
)
from gateway.crypto.html_context import HtmlContext
from gateway.crypto.stream_tokens import TokenReplacer, context_for, escaper_for
from gateway.crypto.token import TOKEN_PREFIX, TokenOpener
from gateway.edge.transform.request import key_unavailable, scope_of
from gateway.http.errors import BadGateway
from gateway.http.exchange import Exchange
from gateway.metrics import CRYPTO_BYTES

__all__ = ["response_filter", "TokenFilter", "EnvelopeFilter"]

_PREFIX = TOKEN_PREFIX.encode("ascii")
# Distinct token key versions one answer may make us look up one by one (cached reads in the
# steady state); past it, one scan of the scope's keys serves the rest of the answer.
MAX_KEY_LOOKUPS = 8
# Envelope segments up to this size are decrypted on the event loop: one AES-GCM call on a
# 64 KiB segment takes ~5 us on the reference machine (AES-NI/VAES, 11 GB/s), an executor
# hand-off ~100 us (bench/crypto.py prints both). Larger segments go to an executor thread.
INLINE_SEGMENT = DEFAULT_SEGMENT_SIZE
# Segments per decryption step while the answer is held back (nothing leaves before the end):
# 4 x 64 KiB, about one upstream read.
HELD_STEP_SEGMENTS = 4
# The most plaintext one `body` answer may hold back to verify it whole (the config's
# `max_body` when smaller): past it, verified segments stream and a later fault cuts the
# connection. A cap, so a large `max_body` for uploads never means gigabyte buffers here.
BUFFER_LIMIT = 16 << 20


def response_filter(
    ex: Exchange, datakeys: DataKeys, *, max_body: int = BUFFER_LIMIT
) -> TokenFilter | EnvelopeFilter | None:
    enc = ex.rule.encrypt if ex.rule is not None else None
    if enc is None or enc.response is None:
        return None
    scope = scope_of(ex, enc)
    if enc.response == "tokens":
        return TokenFilter(ex, datakeys, scope)
    return EnvelopeFilter(
        ex,
        datakeys,
        scope,
        allow_plaintext=enc.allow_plaintext,
        buffer_limit=min(max_body, BUFFER_LIMIT),
    )


class TokenFilter:
    # A replaced answer whose upstream body is all in goes out with a Content-Length, not
    # chunked, up to this size (gateway/edge/proxy.py).
    gather_limit = 1 << 20

    def __init__(self, ex: Exchange, datakeys: DataKeys, scope: str) -> None:
        self._ex = ex
        self._datakeys = datakeys
        self._scope = scope
        self._escape: Callable[[bytes], bytes] | None = None
        self._context: HtmlContext | None = None
        self._every_key: dict[int, bytes] | None = None

    def headers(self, headers: CIMultiDict[str]) -> None:
        escape = escaper_for(headers.get("Content-Type", ""))
        encoding = headers.get("Content-Encoding", "identity").strip().lower()
        if escape is None or encoding not in ("", "identity"):
            # Not a textual answer we can scan (or compressed): passed through untouched.
            return
        self._escape = escape
        # SECURITY: in markup a token opens only where its plaintext is shown as text or a
        # form value (gateway/crypto/html_context.py), never into a URL or script.
        self._context = context_for(headers.get("Content-Type", ""))
        headers.pop("Content-Length", None)

    async def stream(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        if self._escape is None:
            async for chunk in chunks:
                yield chunk
            return
        opener = TokenOpener(self._scope)
        replacer = TokenReplacer(opener, self._escape, self._context)
        self._ex.notes["tokens"] = replacer.counts
        primed = False
        carry = b""
        try:
            async for chunk in chunks:
                if not primed:
                    # The keys are fetched only once a token prefix shows up, also across a
                    # chunk boundary (most answers, redirects and acks, carry none), and
                    # before any byte of that chunk goes out: a store or key failure there
                    # is still a clean 502/503.
                    if _PREFIX in chunk or _PREFIX in carry + chunk[:4]:
                        await self._prime(opener)
                        primed = True
                    carry = chunk[-4:] if len(chunk) >= 4 else (carry + chunk)[-4:]
                out = [replacer.feed(chunk)]
                while replacer.wanted is not None:
                    await self._load(opener, replacer.wanted)
                    out.append(replacer.feed(b""))
                for part in out:
                    if part:
                        yield part
            out = [replacer.finish()]
            while replacer.wanted is not None:
                await self._load(opener, replacer.wanted)
                out.append(replacer.finish())
            for part in out:
                if part:
                    yield part
        finally:
            if opener.opened_bytes:
                CRYPTO_BYTES.labels("decrypt").inc(opener.opened_bytes)

    async def _prime(self, opener: TokenOpener) -> None:
        """The scope's keys this instance has cached (no I/O in the steady state), else every
        version from the store (one scan, which also fails closed on a missing KEK)."""
        keys = self._datakeys.cached_keys(self._scope)
        if not keys:
            try:
                keys = self._every_key = await self._datakeys.all_keys(self._scope)
            except CryptoError as exc:
                raise key_unavailable(exc) from None
        for version, key in keys.items():
            opener.load(version, key)

    async def _load(self, opener: TokenOpener, version: int) -> None:
        """The data key of a version the cache did not have (None when the scope has none such:
        its tokens are foreign)."""
        try:
            if self._every_key is not None or opener.loaded >= MAX_KEY_LOOKUPS:
                # SECURITY: versions come from unauthenticated token bytes; a page naming many
                # costs at most MAX_KEY_LOOKUPS reads, then one scan of the scope's keys.
                if self._every_key is None:
                    self._every_key = await self._datakeys.all_keys(self._scope)
                opener.load(version, self._every_key.get(version))
                return
            try:
                key: bytes | None = await self._datakeys.get(self._scope, version)
            except KeyNotFound:
                key = None
        except CryptoError as exc:
            raise key_unavailable(exc) from None
        opener.load(version, key)


class EnvelopeFilter:
    # Never gathered by the relay: within the bound this filter holds and verifies the whole
    # answer itself (and sets Content-Length); above it, verified segments stream.
    gather_limit = 0

    def __init__(
        self,
        ex: Exchange,
        datakeys: DataKeys,
        scope: str,
        *,
        allow_plaintext: bool,
        buffer_limit: int = BUFFER_LIMIT,
    ) -> None:
        self._ex = ex
        self._datakeys = datakeys
        self._scope = scope
        self._allow_plaintext = allow_plaintext
        self._limit = buffer_limit
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._upstream_type: str | None = None
        self._length: int | None = None

    def headers(self, headers: CIMultiDict[str]) -> None:
        # Until the envelope verified, nothing about the plaintext is announced.
        self._headers = headers
        self._upstream_type = headers.pop("Content-Type", None)
        length = headers.pop("Content-Length", None)
        if length is not None and length.isdigit():
            self._length = int(length)
        headers.pop("Content-Encoding", None)

    def _plaintext(self) -> None:
        if not self._allow_plaintext:
            self._ex.notes["decrypt"] = "not_envelope"
            raise BadGateway("encrypt_response_not_envelope")
        self._ex.notes["decrypt"] = "plaintext_allowed"
        if self._upstream_type is not None:
            self._headers["Content-Type"] = self._upstream_type

    def _invalid(self) -> BadGateway:
        self._ex.notes["decrypt"] = "invalid"
        return BadGateway("encrypt_response_undecryptable")

    async def stream(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        buf: bytes | bytearray = b""
        header = None
        async for chunk in chunks:
            # Usually the whole header is in the first block: then nothing is copied.
            buf = chunk if not buf else bytearray(buf) + chunk
            try:
                header = parse_header(buf)
            except DecryptError:
                header = None
                break
            if header is not None:
                break
        if header is None:
            # Not an envelope (or the body ended first).
            self._plaintext()
            if buf:
                yield bytes(buf)
            async for chunk in chunks:
                yield chunk
            return
        try:
            key = await self._datakeys.get(self._scope, header.key_version)
            decryptor = EnvelopeDecryptor(key, self._scope, header)
        except CryptoError:
            raise self._invalid() from None
        rest = memoryview(bytes(buf) if isinstance(buf, bytearray) else buf)[header.length :]
        del buf
        if header.content_type:
            self._headers["Content-Type"] = header.content_type
        # SECURITY: an envelope known or found to fit the bound is verified whole before its
        # first byte leaves, so a corrupt or cut one is a clean 502 with no plaintext.
        held: list[bytearray] | None = None
        if self._length is None or self._length <= self._limit:
            held = []
        decrypt = decryptor.update
        # Segments larger than the gateway writes (an app's own envelope) would hold the loop
        # for one long AES-GCM call each: those are decrypted on an executor thread.
        off_loop = header.segment_size > INLINE_SEGMENT
        loop = asyncio.get_running_loop()
        counter = CRYPTO_BYTES.labels("decrypt")
        size = 0
        # Streaming, a step is one segment (docs/envelope-format.md: one read, <= 64 KiB of
        # plaintext for the gateway's own envelopes, so what goes out is verified segment by
        # segment); held back, a step is what arrived, up to HELD_STEP_SEGMENTS segments, so
        # the answer leaves in a few large writes. INLINE_SEGMENT says why this is inline.
        steps = _Steps(rest, chunks, header.segment_size + TAG_SIZE)
        steps.per_step = 1 if held is None else HELD_STEP_SEGMENTS
        try:
            data = await steps.next()
            while data is not None:
                out = await loop.run_in_executor(None, decrypt, data) if off_loop else decrypt(data)
                if out:
                    size += len(out)
                    if held is None:
                        counter.inc(len(out))
                        yield out
                    else:
                        held.append(out)
                        if size > self._limit:
                            # Larger than the bound after all: stream verified segments.
                            counter.inc(size)
                            for part in held:
                                yield part
                            held = None
                            steps.per_step = 1
                data = await steps.next()
            out = decryptor.finish()
        except DecryptError:
            raise self._invalid() from None
        self._ex.notes["decrypt"] = "ok"
        size += len(out)
        if held is not None:
            counter.inc(size)
            self._headers["Content-Length"] = str(size)
            held.append(out)
            for part in held:
                if part:
                    yield part
            return
        counter.inc(len(out))
        if out:
            yield out


class _Steps:
    """`first`, then every upstream block, as views (never copies) cut at the envelope's
    segment boundaries, at most `per_step` segments per view: a segment that arrived whole in
    one block reaches the decryptor whole (only one spanning two blocks must be joined)."""

    def __init__(self, first: memoryview, chunks: AsyncIterator[bytes], segment: int) -> None:
        self._view: memoryview | None = first
        self._chunks = chunks
        self._segment = segment
        self._offset = 0  # bytes of the current segment already stepped over
        self.per_step = 1

    async def next(self) -> memoryview | None:
        view = self._view
        while view is not None and not view:
            data = await anext(self._chunks, None)
            view = self._view = None if data is None else memoryview(data)
        if view is None:
            return None
        take = min(self._segment * self.per_step - self._offset, len(view))
        self._view = view[take:]
        self._offset = (self._offset + take) % self._segment
        return view[:take]
