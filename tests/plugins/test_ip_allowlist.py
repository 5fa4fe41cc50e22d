"""ip_allowlist end to end: the client IP as the gateway sees it through trusted_proxies,
403 `ip_not_allowed` before any login prompt, and forged X-Forwarded-For from untrusted
peers never believed."""

from __future__ import annotations

import pytest

USE = "plugins.ip_allowlist"
RULES = {"rules": {"admin": ["10.1.0.0/16", "2001:db8::/32"], "open": ["10.9.9.9/32"]}}
FORBIDDEN = {"error": "forbidden", "reason": "ip_not_allowed"}


async def fetch(gw, path: str, xff: str | None):
    headers = {"Accept": "application/json"}
    if xff is not None:
        headers["X-Forwarded-For"] = xff
    async with gw.client() as s, s.get(gw.url + path, headers=headers) as r:
        return r.status, await r.json()


CASES = [
    # (path, X-Forwarded-For, status, body): peer 127.0.0.1 is a trusted proxy
    ("/open/x", "10.9.9.9", 200, None),
    ("/open/x", "10.9.9.8", 403, FORBIDDEN),
    ("/open/x", "192.0.2.1, 10.9.9.9", 200, None),  # rightmost untrusted hop is the client
    ("/open/x", "10.9.9.9, 192.0.2.1", 403, FORBIDDEN),  # a client cannot prepend its way in
    ("/admin/x", "192.0.2.7", 403, FORBIDDEN),  # before the login answer
    ("/admin/x", "10.1.2.3", 401, {"error": "authentication_required"}),  # allowed: on to auth
    ("/admin/x", "2001:db8::5", 401, {"error": "authentication_required"}),
    ("/embed/x", "192.0.2.7", 200, None),  # a rule without a list is not restricted
]


@pytest.mark.parametrize(("path", "xff", "status", "body"), CASES)
async def test_client_ip_through_trusted_proxies(plugin_gateway, recorder, path, xff, status, body):
    gw = await plugin_gateway([{"use": USE, "with": RULES}], trusted_proxies=["127.0.0.1/32"])
    got_status, got = await fetch(gw, path, xff)
    assert got_status == status
    if body is not None:
        assert got == body
    assert len(recorder.seen) == (1 if status == 200 else 0)


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(plugin_gateway, recorder):
    gw = await plugin_gateway([{"use": USE, "with": RULES}])  # no trusted proxies
    assert await fetch(gw, "/open/x", "10.9.9.9") == (403, FORBIDDEN)
    assert recorder.seen == []


async def test_the_socket_peer_counts_when_it_is_listed(plugin_gateway, recorder):
    gw = await plugin_gateway([{"use": USE, "with": {"rules": {"open": ["127.0.0.0/8"]}}}])
    status, _ = await fetch(gw, "/open/x", "192.0.2.1")
    assert status == 200 and len(recorder.seen) == 1


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [("10.1.2.3", True), ("::ffff:10.1.2.3", True), ("10.2.0.1", False), ("", False),
     ("not-an-ip", False), ("2001:db8::1", True), ("2001:db9::1", False)],
)  # fmt: skip
def test_address_matching_table(ip, allowed):
    from plugins.ip_allowlist import Options, Plugin

    plugin = Plugin(Options(rules={"admin": ("10.1.0.0/16", "2001:db8::/32")}))
    assert plugin.allowed("admin", ip) is allowed
    assert plugin.allowed("other", ip) is True
