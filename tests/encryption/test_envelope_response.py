"""`response: body` from outside: a corrupt or cut envelope never leaks plaintext.

An envelope within the bound (`max_body`) is verified whole before the status line: any fault
is a 502 JSON answer and the raw bytes on the wire hold none of the plaintext. A larger one
streams verified segments; a fault found later cuts the connection before a complete body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.crypto.envelope import ENVELOPE_CONTENT_TYPE, encrypt_envelope
from gateway.edge.transform.request import DATAKEYS
from tests.auth.conftest import AuthGw, auth_config, launch
from tests.encryption.conftest import Store, write_setup
from tests.support.upstream import serve

MARK = b"PLAINTEXT"
# ~200 KB of plaintext whose every 16 bytes carry the marker: any leaked segment shows it.
PLAIN = b"".join(b"%06d" % i + MARK + b"\n" for i in range(12_500))
SIZE = 200_000


async def sealed(egw: AuthGw, plaintext: bytes = PLAIN) -> bytes:
    version, key = await egw.gw.services[DATAKEYS].active("user:alice")
    return encrypt_envelope(key, "user:alice", version, plaintext, "text/plain")


def flipped(envelope: bytes, offset: int) -> bytes:
    out = bytearray(envelope)
    out[offset] ^= 0x01
    return bytes(out)


async def raw_get(egw: AuthGw, path: str, cookie: str) -> bytes:
    """Every byte the gateway sends for one GET, read until it closes the connection."""
    port = int(egw.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    name = egw.auth.sessions.cookie.name
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {name}={cookie}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def alice_cookie(egw: AuthGw) -> str:
    async with egw.client() as s:
        await egw.login(s, "alice")
        cookie = egw.cookie(s)
    assert cookie
    return cookie


@pytest.fixture
async def small_egw(store_upstream: Store, tmp_path: Path) -> AsyncIterator[AuthGw]:
    """The encryption gateway with a 64 KiB bound: a 200 KB envelope is above it."""
    overrides = write_setup(tmp_path)
    config = auth_config(store_upstream.url, tmp_path, max_body="64KiB", **overrides)
    agw = await launch(config)
    await agw.add_user("alice")
    yield agw
    await agw.runner.cleanup()


def status_line(raw: bytes) -> bytes:
    return raw.split(b"\r\n", 1)[0]


async def test_intact_envelope_below_bound_is_sent_whole_with_its_length(
    egw: AuthGw, store_upstream: Store
) -> None:
    store_upstream.bodies["ok"] = (ENVELOPE_CONTENT_TYPE, await sealed(egw))
    async with egw.client() as s:
        await egw.login(s, "alice")
        for path in ("/blob/ok", "/blob/ok?split=70000"):  # with and without a length
            async with s.get(egw.url + path) as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == "text/plain"
                assert r.headers["Content-Length"] == str(len(PLAIN))
                assert await r.read() == PLAIN


# (what the upstream sends, query): Content-Length known, or chunked with ?split.
CORRUPT = [
    pytest.param("truncated", "", id="truncated-with-length"),
    pytest.param("truncated", "?split=70000", id="truncated-chunked"),
    pytest.param("flipped", "", id="flipped-late-segment-with-length"),
    pytest.param("flipped", "?split=140000", id="flipped-late-segment-chunked"),
    pytest.param("no_last", "", id="last-segment-dropped"),
]


def corrupt(kind: str, envelope: bytes) -> bytes:
    if kind == "truncated":
        return envelope[:100_000]
    if kind == "flipped":
        return flipped(envelope, 150_000)
    # Cut exactly at a segment boundary: every segment verifies, the last one is missing.
    seg = 64 * 1024 + 16
    head = len(envelope) - (len(PLAIN) + 16 * -(-len(PLAIN) // (64 * 1024)))
    return envelope[: head + 3 * seg]


@pytest.mark.parametrize(("kind", "query"), CORRUPT)
async def test_corrupt_envelope_below_bound_is_502_without_plaintext(
    egw: AuthGw, store_upstream: Store, kind: str, query: str
) -> None:
    envelope = await sealed(egw)
    assert len(envelope) > SIZE
    store_upstream.bodies["bad"] = (ENVELOPE_CONTENT_TYPE, corrupt(kind, envelope))
    raw = await raw_get(egw, "/blob/bad" + query, await alice_cookie(egw))
    assert status_line(raw) == b"HTTP/1.1 502 Bad Gateway", raw[:200]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert body == b'{"error":"bad_gateway"}'
    assert MARK not in raw and b"text/plain" not in head


async def test_transfer_cut_short_below_bound_is_502(tmp_path: Path) -> None:
    """The upstream announces the whole length but closes after 100,000 bytes."""
    served: dict[str, bytes] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": ENVELOPE_CONTENT_TYPE})
        resp.content_length = len(served["envelope"])
        await resp.prepare(request)
        await resp.write(served["envelope"][:100_000])
        assert request.transport is not None
        request.transport.close()
        return resp

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    up, url = await serve(app)
    overrides = write_setup(tmp_path)
    config = auth_config(url, tmp_path, **overrides)
    egw = await launch(config)
    try:
        await egw.add_user("alice")
        served["envelope"] = await sealed(egw)
        raw = await raw_get(egw, "/blob/cut", await alice_cookie(egw))
    finally:
        await egw.runner.cleanup()
        await up.cleanup()
    assert status_line(raw) == b"HTTP/1.1 502 Bad Gateway", raw[:200]
    assert MARK not in raw


async def test_intact_envelope_above_bound_streams_whole(
    small_egw: AuthGw, store_upstream: Store
) -> None:
    store_upstream.bodies["big"] = (ENVELOPE_CONTENT_TYPE, await sealed(small_egw))
    async with small_egw.client() as s:
        await small_egw.login(s, "alice")
        for path in ("/blob/big", "/blob/big?split=70000"):
            async with s.get(small_egw.url + path) as r:
                assert r.status == 200
                assert "Content-Length" not in r.headers  # streamed, chunked
                assert await r.read() == PLAIN


@pytest.mark.parametrize("query", ["", "?split=140000"], ids=["with-length", "chunked"])
async def test_corrupt_envelope_above_bound_aborts_before_a_complete_body(
    small_egw: AuthGw, store_upstream: Store, query: str
) -> None:
    envelope = flipped(await sealed(small_egw), 150_000)
    store_upstream.bodies["big"] = (ENVELOPE_CONTENT_TYPE, envelope)
    cookie = await alice_cookie(small_egw)
    raw = await raw_get(small_egw, "/blob/big" + query, cookie)
    assert status_line(raw) == b"HTTP/1.1 200 OK"
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    # Verified segments went out, but never the terminating chunk: no clean, short success.
    assert not body.endswith(b"0\r\n\r\n")
    assert len(body) < len(PLAIN)
    async with small_egw.client() as s:
        await small_egw.login(s, "alice")
        async with s.get(small_egw.url + "/blob/big" + query) as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
