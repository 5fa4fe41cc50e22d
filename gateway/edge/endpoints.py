"""The gateway's own endpoints under /.gateway/: a routing table, never proxied.

Feature modules add their handlers with `route(method, path)`; `dispatch` answers 404 JSON for
anything else under the prefix, so nothing under /.gateway/ ever reaches the upstream.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.edge.state import Gateway
from gateway.http.errors import MethodNotAllowed, NotFound, ServiceUnavailable, json_response
from gateway.http.exchange import Exchange
from gateway.metrics import STORE_UP

__all__ = ["Handler", "route", "dispatch"]

Handler = Callable[[Exchange, Gateway], Awaitable[web.StreamResponse]]
_ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = []


def route(methods: str, path: str) -> Callable[[Handler], Handler]:
    """Register a handler; `{name}` in the path matches one segment (in ex.notes["params"])."""
    pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")

    def register(handler: Handler) -> Handler:
        for existing, table in _ROUTES:  # noqa: B007 - the for-else keeps `table`
            if existing.pattern == pattern.pattern:
                break
        else:
            table = {}
            _ROUTES.append((pattern, table))
        for method in methods.split(","):
            table[method.strip().upper()] = handler
        return handler

    return register


async def dispatch(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    path = ex.target.path
    for pattern, table in _ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        method = "GET" if ex.request.method == "HEAD" else ex.request.method
        handler = table.get(method)
        if handler is None:
            raise MethodNotAllowed("method_not_allowed", headers={"Allow": ", ".join(table)})
        ex.notes["params"] = match.groupdict()
        ex.rule_name = "gateway"
        return await handler(ex, gw)
    raise NotFound("no_gateway_endpoint")


@route("GET", "/.gateway/healthz")
async def healthz(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    return json_response({"status": "ok"})


@route("GET", "/.gateway/readyz")
async def readyz(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    """Ready when every registered check passes (store reachable, keys and policies loaded)."""
    if gw.draining:
        raise ServiceUnavailable("draining")
    failed = []
    for name, check in gw.ready_checks:
        try:
            await check()
        except Exception:  # noqa: BLE001 - any failure means not ready; the name says which
            failed.append(name)
    STORE_UP.set(0 if "store" in failed else 1)
    if failed:
        return json_response({"status": "unavailable", "failed": failed}, 503)
    return json_response({"status": "ready"})
