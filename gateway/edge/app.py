"""Builds the aiohttp application: the one catch-all route into the pipeline, the `observe`
middleware that turns every failure into the contract's JSON answer and writes the access log,
and the start-up/clean-up of the shared parts. Never lets a stack trace reach a client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp_session import session_middleware

from gateway.auth.service import AUTH
from gateway.auth.sessions import CookieSettings
from gateway.edge import pipeline
from gateway.edge.session import SessionStorage
from gateway.edge.state import GATEWAY, Gateway
from gateway.http.errors import GatewayError, ServiceUnavailable, answer, json_response
from gateway.http.exchange import EXCHANGE
from gateway.logs import log_access
from gateway.metrics import REQUEST_DURATION, REQUESTS, STORE_UP
from gateway.store.base import StoreUnavailable

__all__ = ["build_app"]

log = logging.getLogger("gateway.app")
Hook = Callable[[web.Application], Awaitable[None]]


@web.middleware
async def observe(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.monotonic()
    reason = ""
    try:
        response = await handler(request)
    except GatewayError as exc:
        reason = exc.reason
        response = answer(exc)
    except StoreUnavailable:
        STORE_UP.set(0)
        reason = "store_unavailable"
        response = answer(ServiceUnavailable(reason))
    except web.HTTPException as exc:  # raised by aiohttp itself (e.g. body over client_max_size)
        reason = "http_" + str(exc.status)
        response = json_response({"error": _code(exc.status)}, exc.status)
    except Exception:
        log.exception("unhandled error", extra={"fields": {"path": request.path}})
        reason = "internal_error"
        response = json_response({"error": "internal_error"}, 500)
    ex = request.get(EXCHANGE)
    fields = {
        "method": request.method,
        "path": ex.target.path if ex else "-",
        "rule": ex.rule_name if ex else "-",
        "status": response.status,
        "duration_ms": round((time.monotonic() - started) * 1000, 2),
        "bytes": response.body_length,
        "user": ex.identity.user if ex and ex.identity else None,
        "request_id": ex.rid if ex else None,
        "client_ip": ex.view.ip if ex else request.remote,
    }
    if reason:
        fields["reason"] = reason
    if ex is not None:
        ex.status = response.status
        if not response.prepared:
            response.headers.setdefault("X-Request-ID", ex.rid)
    _count(fields["rule"], request.method, response.status, time.monotonic() - started)
    log_access(fields)
    return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The labelled children, looked up once: `labels()` validates and locks on every call (~5 µs a
# request of the ~7 µs the two metrics cost). Bounded by rules x methods x statuses.
_COUNTERS: dict[tuple[str, str, int], Any] = {}
_DURATIONS: dict[str, Any] = {}


def _count(rule: str, method: str, status: int, seconds: float) -> None:
    if method not in _METHODS:
        method = "OTHER"
    counter = _COUNTERS.get((rule, method, status))
    if counter is None:
        counter = _COUNTERS[rule, method, status] = REQUESTS.labels(rule, method, str(status))
    counter.inc()
    duration = _DURATIONS.get(rule)
    if duration is None:
        duration = _DURATIONS[rule] = REQUEST_DURATION.labels(rule)
    duration.observe(seconds)


def _code(status: int) -> str:
    return {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }.get(status, "error")


def build_app(
    gw: Gateway, *, on_startup: list[Hook] = (), on_cleanup: list[Hook] = ()
) -> web.Application:
    # SECURITY: bodies are relayed as the client framed them; an inflating server would send
    # the upstream inflated bytes still labelled with their Content-Encoding and length.
    def sessions():
        auth = gw.services.get(AUTH)
        return auth.sessions if auth is not None else None

    storage = SessionStorage(CookieSettings.from_config(gw.config), sessions)
    app = web.Application(
        # Inside `observe`: a store failure while saving a session is a 503 like any other.
        middlewares=[observe, session_middleware(storage)],
        client_max_size=gw.config.max_body,
        handler_args={"auto_decompress": False},
    )
    app[GATEWAY] = gw
    app.router.add_route("*", r"/{tail:[\s\S]*}", pipeline.handle)
    app.on_startup.extend(on_startup)
    app.on_cleanup.extend(on_cleanup)

    async def close_upstream(app: web.Application) -> None:
        await gw.upstream.close()

    app.on_cleanup.append(close_upstream)
    return app
