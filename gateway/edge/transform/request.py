"""Request side of envelope encryption: seal designated fields, or the whole body.

Fails closed: without an identity the request never reaches the upstream; a body that cannot
be parsed is refused (400) and never forwarded as plaintext. Never logs values or keys.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from multidict import CIMultiDict

from gateway.crypto import CryptoError, FieldError
from gateway.crypto.datakeys import DataKeys
from gateway.crypto.envelope import ENVELOPE_CONTENT_TYPE, EnvelopeEncryptor, envelope_length
from gateway.crypto.fields import encrypt_form_fields, encrypt_json_fields
from gateway.crypto.token import seal_field
from gateway.edge.transform.multipart import (
    MultipartSealer,
    boundary_of,
    new_boundary,
    rewrite_multipart,
)
from gateway.http.errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from gateway.http.exchange import Exchange
from gateway.metrics import CRYPTO_BYTES
from gateway.policy.model import Encrypt

__all__ = ["DATAKEYS", "key_unavailable", "scope_of", "transform_request"]

DATAKEYS = "datakeys"
log = logging.getLogger("gateway.crypto")
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# A rewritten multipart body this small is checked whole before the upstream sees a byte.
LOOKAHEAD = 1 << 20
_JSON = "application/json"
_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii"})


def scope_of(ex: Exchange, enc: Encrypt) -> str:
    """The data-key scope of this exchange: `user:<name>` or `role:NAME` (role held)."""
    if ex.identity is None:
        raise Unauthorized("encrypt_requires_identity")
    if enc.scope.startswith("role:"):
        role = enc.scope[len("role:") :]
        if role not in ex.identity.roles:
            raise Forbidden("encrypt_scope_role_not_held")
        return enc.scope
    return f"user:{ex.identity.user}"


def key_unavailable(exc: CryptoError) -> BadGateway:
    """A data key that cannot be unwrapped (its KEK left the config before `keys rewrap`):
    fail closed with 502. The message names a kek id or scope, never key bytes."""
    log.error("data key unavailable: %s", exc)
    return BadGateway("encrypt_key_unavailable")


async def _active(datakeys: DataKeys, scope: str) -> tuple[int, bytes]:
    try:
        return await datakeys.active(scope)
    except CryptoError as exc:
        raise key_unavailable(exc) from None


def _media(headers: CIMultiDict[str]) -> str:
    return headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def _foreign_charset(content_type: str) -> bool:
    """SECURITY: apps (aiohttp among them) decode form and JSON bodies with the charset the
    client names; in UTF-7 or UTF-16 the field names the gateway reads are not the app's."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            if value.strip().strip('"').strip().lower() not in _CHARSETS:
                return True
    return False


async def _read_all(body: AsyncIterator[bytes] | None, limit: int) -> bytes:
    if body is None:
        return b""
    parts: list[bytes] = []
    seen = 0
    async for chunk in body:
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge("body_over_limit")
        parts.append(chunk)
    return b"".join(parts)


async def _envelope(
    body: AsyncIterator[bytes] | None, encryptor: EnvelopeEncryptor
) -> AsyncIterator[bytes | memoryview]:
    """The envelope of `body`, block by block as the client's bytes arrive. Each block is
    sealed on the event loop: every AES-GCM call is one 64 KiB segment, ~5 us on the
    reference machine against ~100 us for an executor hand-off (bench/crypto.py), and a
    block is at most one socket read. The ciphertext goes out as a view (never copied)."""
    yield encryptor.header()
    counter = CRYPTO_BYTES.labels("encrypt")
    if body is not None:
        async for chunk in body:
            out = encryptor.update(chunk)
            counter.inc(len(chunk))
            if out:
                yield memoryview(out)
    yield encryptor.finish()


async def transform_request(
    ex: Exchange,
    datakeys: DataKeys,
    headers: CIMultiDict[str],
    body: AsyncIterator[bytes] | None,
    *,
    length: int | None,
    max_body: int,
) -> AsyncIterator[bytes] | bytes | None:
    """The body to forward for an encrypting rule; `headers` is fixed up in place."""
    rule = ex.rule
    enc = rule.encrypt if rule is not None else None
    if enc is None:
        return body
    scope = scope_of(ex, enc)
    kind = enc.request_kind
    if enc.response == "tokens":
        # Token replacement needs the plain bytes; compressed answers would pass untouched.
        headers["Accept-Encoding"] = "identity"
    if kind is None or body is None:
        return body
    codings = headers.getall("Content-Encoding", [])
    if any(c.strip().lower() != "identity" for c in codings):  # every copy: apps differ
        raise UnsupportedMediaType("encrypt_encoded_body")
    if kind == "body":
        version, key = await _active(datakeys, scope)
        content_type = headers.get("Content-Type", "")
        try:
            encryptor = EnvelopeEncryptor(key, scope, version, content_type)
        except ValueError:
            raise BadRequest("encrypt_bad_content_type") from None
        headers["Content-Type"] = ENVELOPE_CONTENT_TYPE
        headers.pop("Content-Length", None)
        headers.pop("Content-Encoding", None)
        if length is not None:
            headers["Content-Length"] = str(envelope_length(length, content_type))
        ex.notes["encrypt"] = "body"
        return _envelope(body, encryptor)
    media = _media(headers)
    if kind == "form_fields":
        if media == MULTIPART:
            return await _multipart(ex, datakeys, scope, headers, body, enc.form_fields)
        if media != FORM:
            raise UnsupportedMediaType("encrypt_form_expected")
    elif media != _JSON and not media.endswith("+json"):
        raise UnsupportedMediaType("encrypt_json_expected")
    if _foreign_charset(headers.get("Content-Type", "")):
        raise UnsupportedMediaType("encrypt_charset")
    raw = await _read_all(body, max_body)
    version, key = await _active(datakeys, scope)

    def seal(value: bytes) -> str:
        try:
            token = seal_field(key, scope, version, value)
        except ValueError:
            raise FieldError("field value too large") from None
        CRYPTO_BYTES.labels("encrypt").inc(len(value))
        return token

    try:
        if kind == "form_fields":
            out = encrypt_form_fields(raw, enc.form_fields, seal)
        else:
            out = encrypt_json_fields(raw, enc.json_fields, seal)
    except FieldError as exc:
        ex.notes["encrypt_error"] = type(exc).__name__
        raise BadRequest("encrypt_unparsable_body") from None
    headers["Content-Length"] = str(len(out))
    ex.notes["encrypt"] = kind
    return out


async def _multipart(
    ex: Exchange,
    datakeys: DataKeys,
    scope: str,
    headers: CIMultiDict[str],
    body: AsyncIterator[bytes],
    names: tuple[str, ...],
) -> AsyncIterator[bytes] | bytes:
    """Rewrite a multipart/form-data body (see multipart.py). Up to LOOKAHEAD bytes of output
    are produced before anything is sent: a small body is checked whole (a malformed one never
    reaches the upstream) and forwarded with its length; a larger one streams on, chunked, and
    a fault found later aborts the upstream request before its end (never a complete body)."""
    try:
        boundary = boundary_of(headers.get("Content-Type", ""))
    except FieldError as exc:
        ex.notes["encrypt_error"] = type(exc).__name__
        raise BadRequest("encrypt_unparsable_body") from None
    version, key = await _active(datakeys, scope)
    counter = CRYPTO_BYTES.labels("encrypt")

    def seal(value: bytes) -> str:
        try:
            return seal_field(key, scope, version, value)
        except ValueError:
            raise FieldError("field value too large") from None

    sealer = MultipartSealer(
        names=frozenset(names),
        seal=seal,
        encryptor=lambda content_type: EnvelopeEncryptor(key, scope, version, content_type),
        counted=counter.inc,
    )
    out_boundary = new_boundary()
    stream = _guarded(ex, rewrite_multipart(body, boundary, out_boundary, sealer))
    held: list[bytes] = []
    size = 0
    async for chunk in stream:
        held.append(chunk)
        size += len(chunk)
        if size >= LOOKAHEAD:
            break
    else:
        whole = b"".join(held)
        headers["Content-Type"] = f"{MULTIPART}; boundary={out_boundary}"
        headers["Content-Length"] = str(len(whole))
        ex.notes["encrypt"] = "form_fields"
        return whole
    headers["Content-Type"] = f"{MULTIPART}; boundary={out_boundary}"
    headers.pop("Content-Length", None)
    ex.notes["encrypt"] = "form_fields"
    return _resume(held, stream)


async def _guarded(ex: Exchange, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream:
            yield chunk
    except FieldError as exc:
        ex.notes["encrypt_error"] = type(exc).__name__
        ex.notes.pop("encrypt", None)
        raise BadRequest("encrypt_unparsable_body") from None


async def _resume(held: list[bytes], stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in held:
        yield chunk
    held.clear()
    async for chunk in stream:
        yield chunk
