"""Raw request paths, sent byte for byte on a socket: what the upstream receives, or 400."""

from __future__ import annotations

import json

import pytest

from gateway.http.canonical import BadPath, canonicalize
from tests.proxy.conftest import raw_request

CASES = [
    ("/", "/"),
    ("/a/b", "/a/b"),
    ("/a//b", "/a/b"),
    ("//a///b//", "/a/b/"),
    ("/a/./b", "/a/b"),
    ("/a/../b", "/b"),
    ("/../../etc/passwd", "/etc/passwd"),
    ("/static/../admin", "/admin"),
    ("/%2e%2e/admin", "/admin"),
    ("/static/%2E%2E/admin", "/admin"),
    ("/a/%2e/b", "/a/b"),
    ("/%61dmin", "/admin"),
    ("/%7Euser", "/~user"),
    ("/a%2db", "/a-b"),
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("/a%20b", "/a%20b"),
    ("/%252e%252e/admin", "/%252e%252e/admin"),
    ("/a/b/..", "/a/"),
    ("/a/b/.", "/a/b/"),
    ("/a/...", "/a/..."),
    ("/x?next=/../admin", "/x?next=/../admin"),
    ("/x?a=%2F&b=1", "/x?a=%2F&b=1"),
    ("/a/b/..//c", "/a/c"),
    ("/admin/", "/admin/"),
    ("/a%2fb", 400),
    ("/a%2Fb", 400),
    ("/a%5cb", 400),
    ("/a\\b", 400),
    ("/a%00b", 400),
    ("/a%0ab", 400),
    ("/a;jsessionid=1", 400),
    ("/admin;/x", 400),
    ("/%c3", 400),
    ("/%ff%fe", 400),
    ("/%zz", 400),
    ("/%4", 400),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
async def test_raw_path_reaches_upstream_canonical_or_400(gateway, raw, expected):
    request = f"GET {raw} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".encode()
    status, response = await raw_request(gateway.port, request)
    if expected == 400:
        assert status == 400, response[:200]
        body = json.loads(response.partition(b"\r\n\r\n")[2])
        assert body == {"error": "bad_request"}
    else:
        assert status == 200, response[:300]
        body = json.loads(response.partition(b"\r\n\r\n")[2])
        assert body["raw_path"] == expected


@pytest.mark.parametrize(
    "raw",
    ["/.gateway/healthz", "/x/../.gateway/healthz", "//.gateway//healthz", "/%2egateway/healthz"],
)
async def test_gateway_prefix_is_never_proxied(gateway, upstream, raw):
    status, response = await raw_request(
        gateway.port, f"GET {raw} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".encode()
    )
    assert status == 200
    assert json.loads(response.partition(b"\r\n\r\n")[2]) == {"status": "ok"}
    assert upstream.seen == []


def test_canonicalize_is_idempotent():
    for raw, expected in CASES:
        if expected == 400:
            with pytest.raises(BadPath):
                canonicalize(raw)
            continue
        once = canonicalize(raw).target
        assert canonicalize(once).target == once
