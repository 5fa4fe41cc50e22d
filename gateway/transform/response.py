"""Response side of envelope encryption: a streaming `BodyFilter` per encrypting rule.

`tokens`: every `gwe1.` token in a textual answer is replaced by its plaintext escaped for the
content type; tokens the user cannot open stay as they are and are counted in `ex.notes`.
`body`: an envelope is decrypted segment by segment; nothing is released before its tag
verified, and the original Content-Type is restored only then. Never logs plaintext or keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from multidict import CIMultiDict

from gateway.crypto import CryptoError, DecryptError
from gateway.crypto.datakeys import DataKeys
from gateway.crypto.envelope import EnvelopeDecryptor, parse_header
from gateway.crypto.stream_tokens import TokenReplacer, escaper_for
from gateway.crypto.token import TOKEN_PREFIX, make_opener
from gateway.errors import BadGateway
from gateway.exchange import Exchange
from gateway.metrics import CRYPTO_BYTES
from gateway.transform.request import key_unavailable, scope_of

__all__ = ["response_filter", "TokenFilter", "EnvelopeFilter"]

_PREFIX = TOKEN_PREFIX.encode("ascii")


def response_filter(ex: Exchange, datakeys: DataKeys) -> TokenFilter | EnvelopeFilter | None:
    enc = ex.rule.encrypt if ex.rule is not None else None
    if enc is None or enc.response is None:
        return None
    scope = scope_of(ex, enc)
    if enc.response == "tokens":
        return TokenFilter(ex, datakeys, scope)
    return EnvelopeFilter(ex, datakeys, scope, allow_plaintext=enc.allow_plaintext)


class TokenFilter:
    def __init__(self, ex: Exchange, datakeys: DataKeys, scope: str) -> None:
        self._ex = ex
        self._datakeys = datakeys
        self._scope = scope
        self._escape: Callable[[bytes], bytes] | None = None

    def headers(self, headers: CIMultiDict[str]) -> None:
        escape = escaper_for(headers.get("Content-Type", ""))
        encoding = headers.get("Content-Encoding", "identity").strip().lower()
        if escape is None or encoding not in ("", "identity"):
            # Not a textual answer we can scan (or compressed): passed through untouched.
            return
        self._escape = escape
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

        replacer = TokenReplacer(open_token, self._escape)
        self._ex.notes["tokens"] = replacer.counts
        carry = b""
        async for chunk in chunks:
            # The keys (a store read) are fetched only once a token prefix shows up, also
            # across a chunk boundary: most answers (redirects, acks) carry no token.
            if opener is None and (_PREFIX in chunk or _PREFIX in carry + chunk[:4]):
                opener = await self._opener()
            carry = chunk[-4:]
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
        self, ex: Exchange, datakeys: DataKeys, scope: str, *, allow_plaintext: bool
    ) -> None:
        self._ex = ex
        self._datakeys = datakeys
        self._scope = scope
        self._allow_plaintext = allow_plaintext
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._upstream_type: str | None = None

    def headers(self, headers: CIMultiDict[str]) -> None:
        # Until the first segment verified, nothing about the plaintext is announced.
        self._headers = headers
        self._upstream_type = headers.pop("Content-Type", None)
        headers.pop("Content-Length", None)
        headers.pop("Content-Encoding", None)

    def _plaintext(self) -> None:
        if not self._allow_plaintext:
            self._ex.notes["decrypt"] = "not_envelope"
            raise BadGateway("encrypt_response_not_envelope")
        self._ex.notes["decrypt"] = "plaintext_allowed"
        if self._upstream_type is not None:
            self._headers["Content-Type"] = self._upstream_type

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
            self._ex.notes["decrypt"] = "invalid"
            raise BadGateway("encrypt_response_undecryptable") from None
        announced = False

        def announce() -> None:
            nonlocal announced
            if not announced:
                announced = True
                if header.content_type:
                    self._headers["Content-Type"] = header.content_type

        rest = bytes(buf[header.length :])
        del buf
        counter = CRYPTO_BYTES.labels("decrypt")
        try:
            pending = [rest]
            while True:
                for data in pending:
                    out = decryptor.update(data)
                    if out:
                        counter.inc(len(out))
                        announce()
                        yield bytes(out)
                nxt = await anext(chunks, None)
                if nxt is None:
                    break
                pending = [nxt]
            out = decryptor.finish()
        except DecryptError:
            self._ex.notes["decrypt"] = "invalid"
            raise BadGateway("encrypt_response_undecryptable") from None
        announce()
        self._ex.notes["decrypt"] = "ok"
        counter.inc(len(out))
        if out:
            yield bytes(out)
