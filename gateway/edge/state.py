"""The gateway's long-lived parts, built once at start-up and shared by every request.

`Gateway` is plain wiring: config (frozen), the upstream client, and the services later steps
need (store, policies, sessions, keys, metrics). Built by `gateway.edge.app`; never mutated by a
request except through the services' own methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from gateway.clock import Clock, SystemClock
from gateway.config import Config
from gateway.edge.proxy import UpstreamClient
from gateway.http.headers import TrustedProxies

__all__ = ["Gateway", "GATEWAY"]


@dataclass(slots=True)
class Gateway:
    config: Config
    upstream: UpstreamClient
    trusted: TrustedProxies
    upstream_host: str
    upstream_origin: str
    cookie_names: frozenset[str]
    clock: Clock = field(default_factory=SystemClock)
    services: dict[str, Any] = field(default_factory=dict)
    ready_checks: list[Any] = field(default_factory=list)
    draining: bool = False

    @classmethod
    def from_config(cls, config: Config, *, clock: Clock | None = None) -> Gateway:
        parts = urlsplit(config.upstream.url)
        default_port = 443 if parts.scheme == "https" else 80
        port = parts.port or default_port
        host = parts.hostname or ""
        host_header = host if port == default_port else f"{host}:{port}"
        name = config.session.cookie_name
        return cls(
            config=config,
            upstream=UpstreamClient(
                config.upstream.url,
                connect_timeout=config.upstream.connect_timeout,
                timeout=config.upstream.timeout,
            ),
            trusted=TrustedProxies(config.trusted_proxies),
            upstream_host=host_header,
            upstream_origin=f"{parts.scheme}://{parts.netloc}",
            cookie_names=frozenset({name, f"__Host-{name}", "gateway_csrf", "__Host-gateway_csrf"}),
            clock=clock or SystemClock(),
        )


GATEWAY = web.AppKey("gateway", Gateway)
