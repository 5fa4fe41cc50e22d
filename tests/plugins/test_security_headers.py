"""security_headers end to end: on proxied answers and the gateway's own pages, HSTS only
over TLS (as seen through trusted proxies), the upstream's own headers kept unless
configured, and per-rule overrides or opt-outs."""

from __future__ import annotations

import pytest

from gateway.portal.pages import CSP as PAGE_CSP
from plugins.security_headers import GATEWAY_CSP

USE = "plugins.security_headers"
HTTPS = {"X-Forwarded-Proto": "https"}


async def get(gw, path: str, headers: dict | None = None):
    async with gw.client() as s, s.get(gw.url + path, headers=headers or {}) as r:
        await r.read()
        return r.status, r.headers


async def test_proxied_answers_get_the_hardening_headers(plugin_gateway):
    gw = await plugin_gateway([{"use": USE}])
    status, h = await get(gw, "/open/page")
    assert status == 200
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert h["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" not in h  # none for the upstream unless configured
    assert "Strict-Transport-Security" not in h  # plain http: HSTS would be a lie


async def test_hsts_only_when_a_trusted_proxy_says_tls(plugin_gateway):
    gw = await plugin_gateway(
        [{"use": USE, "with": {"hsts_include_subdomains": True}}],
        trusted_proxies=["127.0.0.1/32"],
    )
    _, h = await get(gw, "/open/page", HTTPS)
    assert h["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


async def test_an_untrusted_client_cannot_claim_tls_for_hsts(plugin_gateway):
    gw = await plugin_gateway([{"use": USE}])  # no trusted proxies
    _, h = await get(gw, "/open/page", HTTPS)
    assert "Strict-Transport-Security" not in h


async def test_headers_the_upstream_set_are_kept_unless_override(plugin_gateway):
    gw = await plugin_gateway([{"use": USE}])
    _, h = await get(gw, "/open/p?set=X-Frame-Options:SAMEORIGIN&set=Referrer-Policy:no-referrer")
    assert h["X-Frame-Options"] == "SAMEORIGIN" and h["Referrer-Policy"] == "no-referrer"
    assert h.getall("X-Frame-Options") == ["SAMEORIGIN"]


async def test_override_replaces_the_upstreams_headers(plugin_gateway):
    gw = await plugin_gateway([{"use": USE, "with": {"override": True}}])
    _, h = await get(gw, "/open/p?set=X-Frame-Options:ALLOWALL")
    assert h.getall("X-Frame-Options") == ["DENY"]


async def test_gateway_pages_get_a_strict_csp(plugin_gateway):
    gw = await plugin_gateway([{"use": USE}])
    status, h = await get(gw, "/.gateway/login")
    assert status == 200
    # the login page's own CSP is stricter still (default-src 'none'): kept, not loosened
    assert h["Content-Security-Policy"] == PAGE_CSP and "unsafe-inline" not in PAGE_CSP
    assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
    status, h = await get(gw, "/.gateway/healthz")
    assert h["Content-Security-Policy"] == GATEWAY_CSP
    assert "'unsafe-inline'" not in GATEWAY_CSP and "default-src 'self'" in GATEWAY_CSP


async def test_per_rule_settings_and_opt_out(plugin_gateway):
    options = {
        "content_security_policy": "default-src 'self'",
        "rules": {"embed": {"frame_options": "SAMEORIGIN", "content_security_policy": ""},
                  "open": False},
    }  # fmt: skip
    gw = await plugin_gateway([{"use": USE, "with": options}])
    _, h = await get(gw, "/embed/widget")
    assert h["X-Frame-Options"] == "SAMEORIGIN" and "Content-Security-Policy" not in h
    assert h["X-Content-Type-Options"] == "nosniff"  # inherited
    _, h = await get(gw, "/open/page")
    assert "X-Frame-Options" not in h and "X-Content-Type-Options" not in h
    async with gw.client() as s:
        async with s.get(gw.url + "/private/x", headers={"Accept": "application/json"}) as r:
            assert r.status == 401  # an error answer of the gateway: not a proxied one


@pytest.mark.parametrize("value", ["DENY", "SAMEORIGIN", "off"])
async def test_frame_options_values(plugin_gateway, value):
    gw = await plugin_gateway([{"use": USE, "with": {"frame_options": value}}])
    _, h = await get(gw, "/open/x")
    assert h.get("X-Frame-Options") == (None if value == "off" else value)


async def test_disabled_by_default_enabled_on_one_rule(plugin_gateway):
    options = {
        "enabled": False,
        "rules": {"embed": {"enabled": True, "referrer_policy": "no-referrer"}},
    }
    gw = await plugin_gateway([{"use": USE, "with": options}])
    _, h = await get(gw, "/open/page")
    assert "X-Frame-Options" not in h and "Referrer-Policy" not in h
    _, h = await get(gw, "/embed/page")
    assert h["Referrer-Policy"] == "no-referrer" and h["X-Frame-Options"] == "DENY"
