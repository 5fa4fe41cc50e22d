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

from collections.abc import AsyncIterator, Callable

from multidict import CIMultiDict

from gateway.crypto import CryptoError, DecryptError
from gateway.crypto.datakeys import DataKeys
from gateway.crypto.envelope import EnvelopeDecryptor, parse_header
from gateway.crypto.html_context import HtmlContext
from gateway.crypto.stream_tokens import TokenReplacer, context_for, escaper_for
from gateway.crypto.token import TOKEN_PREFIX, make_opener
from gateway.edge.transform.request import key_unavailable, scope_of
from gateway.http.errors import BadGateway
from gateway.http.exchange import Exchange
from gateway.metrics import CRYPTO_BYTES

__all__ = ["response_filter", "TokenFilter", "EnvelopeFilter"]

_PREFIX = TOKEN_PREFIX.encode("ascii")
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
    def __init__(self, ex: Exchange, datakeys: DataKeys, scope: str) -> None:
        self._ex = ex
        self._datakeys = datakeys
        self._scope = scope
        self._escape: Callable[[bytes], bytes] | None = None
        self._context: HtmlContext | None = None

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
        counter = CRYPTO_BYTES.labels("decrypt")
        opener: Callable[[str], bytes | None] | None = None

        def open_token(token: str) -> bytes | None:
            if opener is None:  # cannot happen: keys load before a token prefix is fed
                raise RuntimeError("token keys not loaded")
            plaintext = opener(token)
            if plaintext is not None:
                counter.inc(len(plaintext))
            return plaintext

        replacer = TokenReplacer(open_token, self._escape, self._context)
        self._ex.notes["tokens"] = replacer.counts
        carry = b""
        async for chunk in chunks:
            # The keys (a store read) are fetched only once a token prefix shows up, also
            # across a chunk boundary: most answers (redirects, acks) carry no token.
            if opener is None and (_PREFIX in chunk or _PREFIX in carry + chunk[:4]):
                opener = await self._opener()
            # The last four bytes seen, also when chunks are shorter than that.
            carry = (carry + chunk)[-4:]
            out = replacer.feed(chunk)
            if out:
                yield out
        tail = replacer.finish()
        if tail:
            yield tail

    async def _opener(self) -> Callable[[str], bytes | None]:
        try:
            keys = await self._datakeys.all_keys(self._scope)
        except CryptoError as exc:
            raise key_unavailable(exc) from None
        return make_opener(self._scope, keys)


class EnvelopeFilter:
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
        buf = bytearray()
        header = None
        async for chunk in chunks:
            buf += chunk
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
        rest = bytes(buf[header.length :])
        del buf
        if header.content_type:
            self._headers["Content-Type"] = header.content_type
        # SECURITY: an envelope known or found to fit the bound is verified whole before its
        # first byte leaves, so a corrupt or cut one is a clean 502 with no plaintext.
        held: list[bytes] | None = None
        if self._length is None or self._length <= self._limit:
            held = []
        counter = CRYPTO_BYTES.labels("decrypt")
        size = 0
        try:
            data: bytes | None = rest
            while data is not None:
                # One upstream read (at most CHUNK bytes) per step keeps each call short.
                out = decryptor.update(data)
                if out:
                    size += len(out)
                    if held is None:
                        counter.inc(len(out))
                        yield bytes(out)
                    else:
                        held.append(bytes(out))
                        if size > self._limit:
                            # Larger than the bound after all: stream verified segments.
                            counter.inc(size)
                            for part in held:
                                yield part
                            held = None
                data = await anext(chunks, None)
            out = decryptor.finish()
        except DecryptError:
            raise self._invalid() from None
        self._ex.notes["decrypt"] = "ok"
        size += len(out)
        if held is not None:
            counter.inc(size)
            self._headers["Content-Length"] = str(size)
            held.append(bytes(out))
            for part in held:
                if part:
                    yield part
            return
        counter.inc(len(out))
        if out:
            yield bytes(out)
