"""The request pipeline, in the order of DESIGN.md section 2. Read this file to find where
anything happens; each step is a function here or one call into its own module.

    canonicalize path -> match policy rule [plugins: on_request] -> load identity
    [plugins: authenticate] -> decide -> transform request [plugins: before_forward]
    -> forward upstream (streaming) -> transform response [plugins: after_response]
    -> metrics + audit (in the `observe` middleware)

Plugin hooks (gateway/hooks.py) run only when a plugin implements them: each is an empty-tuple
check otherwise.

Requests under /.gateway/ are the gateway's own endpoints and are never proxied; those that
need the signed-in user call `gateway.edge.identify` themselves (health checks must not need
the store).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from gateway.edge import endpoints
from gateway.edge.access import enforce, match_rule
from gateway.edge.cross_site import check_cross_site
from gateway.edge.identify import load_identity
from gateway.edge.override import check_form_body, check_query, is_form_post, replay
from gateway.edge.proxy import limited_body
from gateway.edge.state import GATEWAY, Gateway
from gateway.edge.transform.accounting import account
from gateway.edge.transform.request import DATAKEYS, transform_request
from gateway.edge.transform.response import response_filter
from gateway.hooks import EMPTY, PLUGINS, HookSet
from gateway.http.canonical import BadPath, canonicalize
from gateway.http.errors import BadRequest, PayloadTooLarge
from gateway.http.exchange import CURRENT, EXCHANGE, Exchange
from gateway.http.headers import client_view, downstream_headers, request_id, upstream_headers
from gateway.store.base import StoreUnavailable

__all__ = ["handle", "begin"]

GATEWAY_PREFIX = "/.gateway"


def begin(request: web.Request, gw: Gateway) -> Exchange:
    """Step 1: refuse smuggling-prone framing, canonicalize the path, see the client."""
    check_framing(request)
    try:
        target = canonicalize(request.raw_path)
    except BadPath as exc:
        raise BadRequest(f"path_{exc.reason}") from None
    peer = request.remote or ""
    view = client_view(
        request.headers, peer=peer, secure=request.secure, host=request.host, trusted=gw.trusted
    )
    ex = Exchange(request, target, view, request_id(request.headers), time.monotonic())
    request[EXCHANGE] = ex
    CURRENT.set(ex)
    return ex


def check_framing(request: web.Request) -> None:
    """SECURITY: refuse framing two parsers could read differently (request smuggling)."""
    hosts = lengths = encodings = 0
    for name, value in request.raw_headers:
        low = name.lower()
        if low == b"host":
            hosts += 1
        elif low == b"content-length":
            lengths += 1
        elif low == b"transfer-encoding":
            encodings += 1
        if b"\n" in value or b"\r" in value:
            raise BadRequest("obs_fold")
    if hosts > 1 or lengths > 1 or (lengths and encodings):
        raise BadRequest("ambiguous_framing")


async def handle(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    ex = begin(request, gw)
    path = ex.target.path
    hooks: HookSet = gw.services.get(PLUGINS, EMPTY)
    if path == GATEWAY_PREFIX or path.startswith(GATEWAY_PREFIX + "/"):
        response = await endpoints.dispatch(ex, gw)
        if hooks.after_response and not response.prepared:
            await hooks.run_after_response(ex, response.headers)
        return response
    match_rule(ex, gw)
    if hooks.on_request:
        early = await hooks.run_on_request(ex)
        if early is not None:
            return early
    await identify(ex, gw, hooks)
    await check_cross_site(ex, gw)
    denied = await enforce(ex, gw)
    if denied is not None:
        return denied
    return await forward(ex, gw, hooks)


async def forward(ex: Exchange, gw: Gateway, hooks: HookSet = EMPTY) -> web.StreamResponse:
    """Steps 5-7: build upstream headers, stream the body up, stream the answer back."""
    request = ex.request
    check_query(ex.target.query, request.method)  # SECURITY: `?_method=DELETE`
    headers = upstream_headers(
        request.headers.items(),
        view=ex.view,
        rid=ex.rid,
        identity=ex.identity,
        upstream_host=gw.upstream_host,
        preserve_host=gw.config.upstream.preserve_host,
        gateway_cookies=gw.cookie_names,
    )
    if hooks.before_forward:
        answer = await hooks.run_before_forward(ex, headers)
        if answer is not None:
            return answer
    if _is_websocket(request):
        if ex.rule is not None and ex.rule.encrypt is not None:
            # SECURITY: frames are not envelope-encrypted; never relay them in plaintext.
            raise BadRequest("websocket_on_encrypting_rule")
        return await gw.upstream.relay_websocket(request, ex.target.target, headers)
    length = request.content_length
    if length is not None and length > gw.config.max_body:
        raise PayloadTooLarge("declared_length_over_limit")
    body: AsyncIterator[bytes] | bytes | None = None
    if request.body_exists:
        body = limited_body(request.content, gw.config.max_body)
        if length is not None:
            headers["Content-Length"] = str(length)
        if is_form_post(request.method, request.headers.get("Content-Type", "")):
            # SECURITY: `_method=DELETE` in a form body; buffered, scanned, forwarded as read.
            codings = request.headers.getall("Content-Encoding", [])
            raw = await check_form_body(body, codings, gw.config.max_body)
            headers["Content-Length"] = str(len(raw))
            body = replay(raw)
    encrypting = ex.rule is not None and ex.rule.encrypt is not None
    try:
        return await _send(ex, gw, headers, body, length, encrypting, hooks)
    finally:
        if encrypting:
            await account(ex, gw)


async def _send(
    ex: Exchange,
    gw: Gateway,
    headers: CIMultiDict[str],
    body: AsyncIterator[bytes] | bytes | None,
    length: int | None,
    encrypting: bool,
    hooks: HookSet = EMPTY,
) -> web.StreamResponse:
    """Steps 5b-7: the encryption transforms (when the rule asks), then the upstream."""
    request = ex.request
    body_filter = None
    if encrypting:
        datakeys = gw.services[DATAKEYS]
        body = await transform_request(
            ex, datakeys, headers, body, length=length, max_body=gw.config.max_body
        )
        body_filter = response_filter(ex, datakeys, max_body=gw.config.max_body)
    public_origin = f"{ex.view.proto}://{ex.view.host}"

    def downstream(h: CIMultiDict[str]) -> CIMultiDict[str]:
        return downstream_headers(
            h.items(),
            upstream_origin=gw.upstream_origin,
            public_origin=public_origin,
            gateway_cookies=gw.cookie_names,
        )

    make: Callable[[CIMultiDict[str]], Any] = downstream
    if hooks.after_response:

        async def make(h: CIMultiDict[str]) -> CIMultiDict[str]:
            out = downstream(h)
            await hooks.run_after_response(ex, out)
            return out

    return await gw.upstream.forward(
        request,
        ex.target.target,
        headers,
        body,
        make_downstream=make,
        body_filter=body_filter,
    )


async def identify(ex: Exchange, gw: Gateway, hooks: HookSet = EMPTY) -> None:
    """Step 3: the session cookie first; without a session identity, the plugins'
    `authenticate` hooks in config order (e.g. API keys). A store outage fails closed on
    protected routes (503) but a public route is still served, anonymously."""
    try:
        await load_identity(ex, gw)
        if ex.identity is None and hooks.authenticate:
            ex.identity = await hooks.run_authenticate(ex)
    except StoreUnavailable:
        rule = ex.rule
        access = rule.access if rule is not None else gw.config.default_access
        if access != "public":
            raise
        ex.identity = ex.session = None


def _is_websocket(request: web.Request) -> bool:
    return (
        request.method == "GET"
        and request.headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in request.headers.get("Connection", "").lower()
    )
