"""SECURITY: method overrides hidden in the query string or a form body.

Rails (Rack::MethodOverride), Laravel, Symfony and Express method-override act on a `_method`
field as if the request had that method, so `POST /notes/1` with `_method=DELETE` would pass a
rule that denies DELETE. The gateway refuses such requests (400, reason `method_override`)
before the upstream sees a byte; the override headers are stripped in gateway/http/headers.py.

The scan is deliberately wider than any one framework (fail closed): the name is decoded
(`+`, percent escapes), read as PHP and Rack read it (`_method[]`, ` _method`), compared
case-insensitively; fields split on `&` and `;` (Rack 2). Only urlencoded POST bodies are
read: multipart `_method` parts are not scanned (see docs/policies.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import unquote_to_bytes

from gateway.crypto.fields import _php_path  # the one reading of PHP/Rack field names
from gateway.edge.transform.request import FORM, _read_all
from gateway.http.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "FORM_SCAN_LIMIT",
    "MethodOverride",
    "check_form_body",
    "check_query",
    "is_form_post",
    "replay",
]

# Urlencoded POST bodies are buffered this far to be scanned; larger ones are refused (413).
FORM_SCAN_LIMIT = 1 << 20
_NAME = "_method"


class MethodOverride(BadRequest):
    hints = {"reason": "method_override"}


def _decode(part: bytes) -> str:
    # Lenient like PHP and Rack: a malformed escape stays as it is (it is the app's to judge).
    return unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8", "replace")


def _overrides(data: bytes, method: str) -> bool:
    """Whether `data` (a query string or urlencoded body) names a method other than `method`."""
    if b"method" not in data.lower() and b"%" not in data:
        return False  # cheap: no field can be named _method
    for pair in data.replace(b";", b"&").split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        if _php_path(_decode(raw_name))[0].lower() != _NAME:
            continue
        if _decode(raw_value).strip().upper() != method:
            return True
    return False


def check_query(query: str, method: str) -> None:
    if query and _overrides(query.encode("utf-8", "surrogateescape"), method):
        raise MethodOverride("method_override")


def is_form_post(method: str, content_type: str) -> bool:
    return method == "POST" and content_type.split(";", 1)[0].strip().lower() == FORM


async def check_form_body(
    body: AsyncIterator[bytes] | None, codings: list[str], max_body: int
) -> bytes:
    """Buffer an urlencoded POST body (up to FORM_SCAN_LIMIT or max_body), refuse it if it
    overrides the method, else return the same bytes to forward."""
    if any(c.strip().lower() != "identity" for c in codings):
        raise UnsupportedMediaType("form_encoded_body")  # an app may inflate what we cannot read
    limit = min(FORM_SCAN_LIMIT, max_body)
    try:
        raw = await _read_all(body, limit)
    except PayloadTooLarge:
        raise PayloadTooLarge("form_body_over_scan_limit") from None
    if _overrides(raw, "POST"):
        raise MethodOverride("method_override")
    return raw


async def replay(raw: bytes) -> AsyncIterator[bytes]:
    """The buffered body again, as the stream the forwarding path expects."""
    if raw:
        yield raw
