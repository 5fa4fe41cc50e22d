"""The cross-site step: refuse a state-changing request another site made the browser send.

Legacy apps rarely check CSRF tokens; SameSite=Lax on the session cookie keeps it off a
cross-site POST, but not off a GET, not off a sibling subdomain (same site), and not for users
whose browser ignores SameSite. Where a rule (or `cross_site.check`) asks for it, a request
with an unsafe method is refused (403 `cross_site_request`, audited, counted) when the browser
says it came from elsewhere:

- `Sec-Fetch-Site` (every current browser sends it): `same-origin` and `none` (typed in,
  bookmarks) pass; `same-site` and `cross-site` pass only from an allowed origin.
- Without it, `Origin`: the gateway's own origin or an allowed one passes; any other, `null`
  included, is refused.
- Neither header: not a browser's cross-site request (scripts, old clients); it passes.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from gateway.edge.state import Gateway
from gateway.http.errors import CrossSiteRequest
from gateway.http.exchange import Exchange
from gateway.metrics import CROSS_SITE_REFUSED

__all__ = ["check_cross_site", "verdict"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _origin(value: str) -> str | None:
    """`scheme://host:port` with the port spelled out, or None for anything else."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.hostname.lower()}:{port or _DEFAULT_PORTS[parts.scheme]}"


@lru_cache(maxsize=8)
def _allowed(origins: tuple[str, ...]) -> frozenset[str]:
    """The configured origins in `_origin`'s form, worked out once per config, not per request."""
    return frozenset(filter(None, map(_origin, origins)))


def verdict(
    method: str, fetch_site: str | None, origin: str | None, own: str, allowed: frozenset[str]
) -> str | None:
    """Why the request is refused (a reason id), or None when it passes."""
    if method in SAFE_METHODS:
        return None
    said = _origin(origin) if origin else None
    if fetch_site is not None:
        site = fetch_site.strip().lower()
        if site in ("same-origin", "none"):
            return None
        if said is not None and said in allowed:
            return None
        return "sec_fetch_site_" + (
            site.replace("-", "_") if site in ("same-site", "cross-site") else "other"
        )
    if origin is None:
        return None
    if said is not None and (said == own or said in allowed):
        return None
    return "origin_mismatch"


async def check_cross_site(ex: Exchange, gw: Gateway) -> None:
    rule = ex.rule
    enabled = getattr(rule, "cross_site_check", None)
    if enabled is None:
        enabled = gw.config.cross_site.check
    if not enabled or ex.request.method in SAFE_METHODS:
        return
    headers = ex.request.headers
    own = _origin(f"{ex.view.proto}://{ex.view.host}") or ""
    allowed = _allowed(gw.config.cross_site.allowed_origins)
    reason = verdict(
        ex.request.method, headers.get("Sec-Fetch-Site"), headers.get("Origin"), own, allowed
    )
    if reason is None:
        return
    CROSS_SITE_REFUSED.labels(ex.rule_name).inc()
    auth = gw.services.get("auth")
    if auth is not None:
        user = ex.identity.user if ex.identity is not None else None
        await auth.audit.record_or_log(
            "request.cross_site", user=user, outcome="refused", ex=ex, reason=reason
        )
    raise CrossSiteRequest(reason)
