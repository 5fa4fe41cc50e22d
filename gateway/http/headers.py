"""Header hygiene at both edges of the proxy: the one place that builds identity headers.

Request side: hop-by-hop headers and every header named in `Connection` are removed FIRST, then
every client-sent header whose name (folded for case and `_`/`-`) is one of the gateway's
identity or forwarding headers (any `X-Forwarded-*`, and other claims of the client's
address), or a path/method override, then the gateway's own cookies;
only after that are the gateway's headers added, so nothing a client sends can delete or forge
them.
Response side: hop-by-hop headers are removed, attempts by the upstream to set the gateway's
cookies are dropped, and `Location` headers pointing at the upstream's origin are rewritten.
Never logs header values (they carry cookies and credentials).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from multidict import CIMultiDict

__all__ = [
    "ClientView",
    "Identity",
    "TrustedProxies",
    "client_view",
    "downstream_headers",
    "fold",
    "request_id",
    "upstream_headers",
]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
IDENTITY = ("X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups")
FORWARDING = (
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Request-ID",
    "X-Real-IP",
    "Forwarded",
)
# Headers with which some frameworks replace the request's path or method (Symfony, Laminas,
# IIS URL Rewrite; Rack, Express, ASP.NET method override): the app would act on another path
# or method than the one the policy matched.
OVERRIDES = (
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Override-URL",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
)
# Claims of the client's address that apps read before (or instead of) X-Forwarded-For, e.g.
# PHP's `HTTP_CLIENT_IP`; with every other `X-Forwarded-*` (Ssl, Scheme, Prefix, Uri...) only
# the gateway may say where a request comes from.
CLIENT_CLAIMS = (
    "Client-IP",
    "X-Client-IP",
    "True-Client-IP",
    "X-Cluster-Client-IP",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Originating-IP",
    "X-Remote-IP",
    "X-Remote-Addr",
    "X-Forwarded",
    "Forwarded-For",
)
_RESERVED = frozenset(n.lower() for n in IDENTITY + FORWARDING + OVERRIDES + CLIENT_CLAIMS)
# The client's own Expect was answered by the gateway's server; the client library handles
# Expect toward the upstream itself. Host is set explicitly.
_DROP_REQUEST = frozenset({"host", "expect", "content-length"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def fold(name: str) -> str:
    """Header name as WSGI/PHP backends see it: `X_Forwarded_User` == `x-forwarded-user`."""
    return name.lower().replace("_", "-")


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    email: str = ""
    roles: tuple[str, ...] = ()


class TrustedProxies:
    def __init__(self, cidrs: Iterable[str]) -> None:
        self._nets = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)

    def __contains__(self, ip: str) -> bool:
        if not self._nets:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self._nets)


@dataclass(frozen=True, slots=True)
class ClientView:
    """Who the client is, believing forwarding headers only from trusted proxies."""

    peer: str
    ip: str
    proto: str
    host: str
    forwarded_for: str  # the X-Forwarded-For value to send upstream


def _last_value(headers: CIMultiDict[str], name: str) -> str | None:
    values = headers.getall(name, [])
    return values[-1].strip() if values else None


def client_view(
    headers: CIMultiDict[str], *, peer: str, secure: bool, host: str, trusted: TrustedProxies
) -> ClientView:
    proto = "https" if secure else "http"
    if peer not in trusted:
        return ClientView(peer, peer, proto, host, peer)
    chain = [p.strip() for v in headers.getall("X-Forwarded-For", []) for p in v.split(",")]
    chain = [p for p in chain if p]
    client = peer
    for hop in reversed(chain):
        client = hop
        if hop not in trusted:
            break
    fwd_proto = _last_value(headers, "X-Forwarded-Proto")
    if fwd_proto in ("http", "https"):
        proto = fwd_proto
    fwd_host = _last_value(headers, "X-Forwarded-Host")
    if fwd_host and re.fullmatch(r"[A-Za-z0-9.\-:\[\]]{1,255}", fwd_host):
        host = fwd_host
    forwarded_for = ", ".join([*chain, peer])
    return ClientView(peer, client, proto, host, forwarded_for)


def request_id(headers: CIMultiDict[str]) -> str:
    sent = headers.get("X-Request-ID")
    if sent is not None and _REQUEST_ID.match(sent):
        return sent
    # 128 random bits as 32 hex digits, like uuid4().hex but a fifth of its cost.
    return os.urandom(16).hex()


def _strip_cookies(value: str, names: frozenset[str]) -> str:
    kept = []
    for pair in value.split(";"):
        name = pair.split("=", 1)[0].strip()
        if name and name not in names:
            kept.append(pair.strip())
    return "; ".join(kept)


def _connection_named(items: list[tuple[str, str]]) -> set[str]:
    """Header names listed in `Connection`: hop-by-hop by declaration (RFC 9110 7.6.1)."""
    return {
        token.strip().lower()
        for name, value in items
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    }


def upstream_headers(
    client: Iterable[tuple[str, str]],
    *,
    view: ClientView,
    rid: str,
    identity: Identity | None,
    upstream_host: str,
    preserve_host: bool,
    gateway_cookies: frozenset[str],
) -> CIMultiDict[str]:
    items = list(client)
    connection_named = _connection_named(items)
    out: CIMultiDict[str] = CIMultiDict()
    client_host = None
    for name, value in items:
        low = name.lower()
        if low == "host":
            client_host = value
        if low in HOP_BY_HOP or low in connection_named or low in _DROP_REQUEST:
            continue
        # SECURITY: `X_Forwarded_User` reaches CGI apps as the real one; an override header
        # would have the app serve another path or method than the policy matched.
        folded = fold(name)
        if folded in _RESERVED or folded.startswith("x-forwarded-"):
            continue
        if low == "cookie":
            value = _strip_cookies(value, gateway_cookies)
            if not value:
                continue
        out.add(name, value)
    out["Host"] = client_host if preserve_host and client_host else upstream_host
    out["X-Forwarded-For"] = view.forwarded_for
    out["X-Forwarded-Proto"] = view.proto
    out["X-Forwarded-Host"] = view.host
    out["X-Request-ID"] = rid
    if identity is not None:
        out["X-Forwarded-User"] = identity.user
        # Omitted when empty: an empty value reads as "known to have none" to some apps.
        if identity.email:
            out["X-Forwarded-Email"] = identity.email
        if identity.roles:
            out["X-Forwarded-Groups"] = ",".join(identity.roles)
    return out


def _sets_gateway_cookie(value: str, names: frozenset[str]) -> bool:
    return value.split("=", 1)[0].strip() in names


def downstream_headers(
    upstream: Iterable[tuple[str, str]],
    *,
    upstream_origin: str,
    public_origin: str,
    gateway_cookies: frozenset[str],
) -> CIMultiDict[str]:
    items = list(upstream)
    connection_named = _connection_named(items)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in items:
        low = name.lower()
        if low in HOP_BY_HOP or low in connection_named:
            continue
        if low == "set-cookie" and _sets_gateway_cookie(value, gateway_cookies):
            continue
        if low == "location":
            value = rewrite_location(value, upstream_origin, public_origin)
        out.add(name, value)
    return out


def rewrite_location(value: str, upstream_origin: str, public_origin: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return value
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if origin != upstream_origin.lower():
        return value
    return public_origin + value[len(origin) :]
