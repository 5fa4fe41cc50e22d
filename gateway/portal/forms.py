"""Reading what a client posts to the gateway's own endpoints, and the CSRF rules for it.

A JSON endpoint takes `application/json` (which no cross-site simple request can send) or, for
browsers, a form that carries a CSRF token: session-bound once signed in, a double-submit cookie
on the login form. Anything else is refused with 415. A cross-origin `Origin` is refused
outright. Never logs what was posted.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from gateway.auth.sessions import CookieSettings
from gateway.http.errors import BadRequest, Forbidden, UnsupportedMediaType
from gateway.http.exchange import Exchange

__all__ = ["Posted", "read_posted", "check_token", "csrf_cookie_token", "check_origin"]

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
TOKEN_FIELD = "csrf_token"  # noqa: S105 - a field name
TOKEN_HEADER = "X-CSRF-Token"  # noqa: S105 - a header name


class Posted:
    def __init__(self, kind: str, data: dict[str, Any]) -> None:
        self.kind = kind  # "json" | "form" | "empty"
        self.data = data

    @property
    def is_form(self) -> bool:
        return self.kind == "form"

    def text(self, name: str) -> str | None:
        value = self.data.get(name)
        return value if isinstance(value, str) else None


def check_origin(ex: Exchange) -> None:
    """SECURITY: a browser that says where the request comes from must say it is us."""
    origin = ex.request.headers.get("Origin")
    if origin is None:
        return
    if origin != f"{ex.view.proto}://{ex.view.host}":
        raise Forbidden("cross_origin")


async def read_posted(ex: Exchange, *, allow_empty: bool = False) -> Posted:
    check_origin(ex)
    request = ex.request
    ctype = request.content_type if request.body_exists else ""
    if ctype == "application/json":
        raw = await request.read()
        if not raw.strip() and allow_empty:
            return Posted("json", {})
        try:
            data = json.loads(raw)
            # SECURITY: a lone surrogate (`"\ud800"`) parses but is no string that can be
            # hashed or stored, and deep nesting overflows the parser: both 400, never 500.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (ValueError, UnicodeError, RecursionError):
            raise BadRequest("invalid_json") from None
        if not isinstance(data, dict):
            raise BadRequest("json_not_object")
        return Posted("json", data)
    if ctype in FORM_TYPES and not ex.wants_json:
        try:
            form = await request.post()
        except (ValueError, LookupError):  # bytes that are not UTF-8, a bogus charset, framing
            raise BadRequest("invalid_form") from None
        return Posted("form", {k: v for k, v in form.items() if isinstance(v, str)})
    if not request.body_exists and allow_empty:
        return Posted("empty", {})
    raise UnsupportedMediaType("content_type")


def check_token(ex: Exchange, posted: Posted, expected: str) -> None:
    """Forms and bodiless posts must carry the expected CSRF token; JSON bodies need none."""
    if posted.kind == "json":
        return
    sent = posted.text(TOKEN_FIELD) if posted.is_form else ex.request.headers.get(TOKEN_HEADER)
    if not sent or not expected or not _same(sent, expected):
        raise Forbidden("csrf_failed")


def _same(a: str, b: str) -> bool:
    try:
        return secrets.compare_digest(a.encode(), b.encode())
    except (UnicodeEncodeError, TypeError):
        return False


def csrf_cookie_token(ex: Exchange, cookie: CookieSettings) -> str | None:
    """The double-submit token of the login form, if the client holds a well-formed one."""
    try:
        value = ex.request.cookies.get(cookie.csrf_name)
    except Exception:  # noqa: BLE001 - an unparsable Cookie header has no token
        return None
    if value and 20 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum():
        return value
    return None
