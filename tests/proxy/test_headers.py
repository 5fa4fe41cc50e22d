"""Header handling as an attacker would probe it: spoofed forwarding and identity headers,
Connection-named headers, smuggling-prone framing, cookies."""

from __future__ import annotations

import aiohttp
import pytest

from tests.proxy.conftest import gateway_config, raw_request, start_gateway


def _headers(body: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in body["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


async def get(url: str, headers: dict[str, str] | None = None) -> dict:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        assert r.status == 200
        return await r.json()


async def test_spoofed_xff_from_untrusted_peer_is_replaced(gateway):
    body = await get(
        gateway.url + "/x",
        {
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
        },
    )
    h = _headers(body)
    assert h["x-forwarded-for"] == ["127.0.0.1"]
    assert h["x-forwarded-proto"] == ["http"]
    assert h["x-forwarded-host"] == [f"127.0.0.1:{gateway.port}"]


async def test_xff_from_trusted_proxy_is_appended(upstream, tmp_path):
    config = gateway_config(upstream.url, tmp_path, trusted_proxies=["127.0.0.0/8"])
    runner = await start_gateway(config)
    try:
        body = await get(
            f"http://127.0.0.1:{config.listen_port}/x",
            {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        )
    finally:
        await runner.cleanup()
    h = _headers(body)
    assert h["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"]
    assert h["x-forwarded-proto"] == ["https"]


@pytest.mark.parametrize(
    "name",
    [
        "X-Forwarded-User",
        "x-forwarded-user",
        "X_Forwarded_User",
        "X-FORWARDED_EMAIL",
        "x_forwarded_groups",
        "X-Real-IP",
        "Forwarded",
        "X_Forwarded_For",
    ],
)
async def test_client_identity_and_forwarding_headers_never_reach_upstream(gateway, name):
    status, raw = await raw_request(
        gateway.port,
        f"GET /x HTTP/1.1\r\nHost: gw\r\n{name}: admin\r\nConnection: close\r\n\r\n".encode(),
    )
    assert status == 200
    body = raw.partition(b"\r\n\r\n")[2]
    assert b"admin" not in body


async def test_connection_named_headers_are_removed_before_gateway_adds_its_own(gateway):
    status, raw = await raw_request(
        gateway.port,
        b"GET /x HTTP/1.1\r\nHost: gw\r\nConnection: X-Forwarded-For, X-Secret, close\r\n"
        b"X-Secret: s3\r\nKeep-Alive: 5\r\nTE: trailers\r\n\r\n",
    )
    assert status == 200
    import json

    h = _headers(json.loads(raw.partition(b"\r\n\r\n")[2]))
    assert h["x-forwarded-for"] == ["127.0.0.1"]  # the gateway's header survived
    assert "x-secret" not in h and "keep-alive" not in h and "te" not in h
    assert "x-request-id" in h


async def test_client_request_id_is_kept_and_invalid_one_replaced(gateway):
    h = _headers(await get(gateway.url + "/x", {"X-Request-ID": "abc-123"}))
    assert h["x-request-id"] == ["abc-123"]
    h = _headers(await get(gateway.url + "/x", {"X-Request-ID": "bad id <script>"}))
    assert h["x-request-id"] != ["bad id <script>"] and len(h["x-request-id"][0]) == 32


async def test_gateway_cookie_is_stripped_other_cookies_kept(gateway):
    h = _headers(await get(gateway.url + "/x", {"Cookie": "a=1; gateway_session=s3cr3t; b=2"}))
    assert h["cookie"] == ["a=1; b=2"]


async def test_host_is_rewritten_unless_preserved(gateway, upstream, tmp_path):
    h = _headers(await get(gateway.url + "/x", {"Host": "app.example"}))
    assert h["host"] == [f"127.0.0.1:{upstream.port}"]
    config = gateway_config(
        upstream.url, tmp_path, upstream={"url": upstream.url, "preserve_host": True}
    )
    runner = await start_gateway(config)
    try:
        h = _headers(await get(f"http://127.0.0.1:{config.listen_port}/x", {"Host": "app.example"}))
    finally:
        await runner.cleanup()
    assert h["host"] == ["app.example"]


@pytest.mark.parametrize(
    "framing",
    [
        b"Host: a\r\nHost: b\r\n",
        b"Host: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n",
        b"Host: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        b"Host: a\r\nX-Folded: one\r\n two\r\n",
    ],
)
async def test_smuggling_prone_framing_is_refused(gateway, upstream, framing):
    status, _ = await raw_request(
        gateway.port, b"POST /x HTTP/1.1\r\n" + framing + b"Connection: close\r\n\r\nabc"
    )
    assert status == 400
    assert upstream.seen == []


def test_server_runs_with_the_c_http_parser():
    from aiohttp import http_parser

    assert http_parser.HttpRequestParser.__module__ == "aiohttp._http_parser"


async def test_upstream_hop_headers_and_gateway_cookie_forgery_dropped(gateway):
    async with aiohttp.ClientSession() as s, s.get(gateway.url + "/hop") as r:
        assert r.status == 200
        assert "X-Secret-Hop" not in r.headers
        assert all("gateway_session" not in v for v in r.headers.getall("Set-Cookie", []))


async def test_upstream_location_is_rewritten_to_gateway_origin(gateway):
    async with (
        aiohttp.ClientSession() as s,
        s.get(gateway.url + "/redirect", allow_redirects=False) as r,
    ):
        assert r.status == 302
        assert r.headers["Location"] == f"http://127.0.0.1:{gateway.port}/landing?a=1"


async def test_request_ids_are_random_hex_and_a_well_formed_client_id_is_kept(gateway):
    seen = set()
    async with aiohttp.ClientSession() as s:
        for _ in range(40):
            async with s.get(gateway.url + "/x") as r:
                rid = r.headers["X-Request-ID"]
                assert _headers(await r.json())["x-request-id"] == [rid]
            assert len(rid) == 32 and all(c in "0123456789abcdef" for c in rid)
            seen.add(rid)
        async with s.get(gateway.url + "/x", headers={"X-Request-ID": "client-id.1"}) as r:
            assert r.headers["X-Request-ID"] == "client-id.1"
            assert _headers(await r.json())["x-request-id"] == ["client-id.1"]
        async with s.get(gateway.url + "/x", headers={"X-Request-ID": "bad id\t<>"}) as r:
            replaced = r.headers["X-Request-ID"]
            assert len(replaced) == 32 and replaced not in seen
    assert len(seen) == 40  # never repeats
