"""Streaming, failure mapping and protocol details of the forward step, over real sockets."""

from __future__ import annotations

import asyncio
import os
import socket

import aiohttp
import psutil
from prometheus_client import REGISTRY

from tests.proxy.conftest import gateway_config, raw_request, start_gateway

MiB = 1 << 20


async def test_large_upload_and_download_stream_with_flat_memory(gateway):
    """256 MiB each way: the gateway's process memory must not grow with the body."""
    proc = psutil.Process(os.getpid())
    size = 256 * MiB
    block = os.urandom(MiB)

    async def body():
        for _ in range(size // MiB):
            yield block

    before = proc.memory_info().rss
    async with aiohttp.ClientSession() as s:
        # max_body is 1 MiB in this fixture; the download path has no limit.
        async with s.get(f"{gateway.url}/big?bytes={size}") as r:
            assert r.status == 200
            assert r.headers["Content-Length"] == str(size)
            got = 0
            async for chunk in r.content.iter_chunked(MiB):
                got += len(chunk)
            assert got == size
    grown = proc.memory_info().rss - before
    assert grown < 64 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"
    del body


async def test_large_upload_streams_when_limit_allows(upstream, tmp_path):
    config = gateway_config(upstream.url, tmp_path, max_body="1GiB")
    runner = await start_gateway(config)
    proc = psutil.Process(os.getpid())
    size = 256 * MiB
    block = os.urandom(MiB)

    async def body():
        for _ in range(size // MiB):
            yield block

    before = proc.memory_info().rss
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"http://127.0.0.1:{config.listen_port}/sink", data=body()) as r,
        ):
            assert r.status == 200
            assert (await r.json())["received"] == size
    finally:
        await runner.cleanup()
    grown = proc.memory_info().rss - before
    assert grown < 64 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"


async def test_declared_oversized_body_gets_413_without_reaching_upstream(gateway, upstream):
    status, raw = await raw_request(
        gateway.port,
        b"POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n",
    )
    assert status == 413
    assert b'{"error":"payload_too_large"}' in raw
    assert upstream.seen == []


async def test_chunked_oversized_body_gets_413(gateway):
    async def body():
        for _ in range(4):
            yield b"x" * (512 * 1024)

    async with aiohttp.ClientSession() as s, s.post(gateway.url + "/sink", data=body()) as r:
        assert r.status == 413
        assert await r.json() == {"error": "payload_too_large"}


async def test_refused_upstream_gives_502(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    config = gateway_config(f"http://127.0.0.1:{dead}", tmp_path)
    runner = await start_gateway(config)
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{config.listen_port}/x") as r,
        ):
            assert r.status == 502
            assert await r.json() == {"error": "bad_gateway"}
        assert REGISTRY.get_sample_value("gateway_upstream_up") == 0
        assert (
            REGISTRY.get_sample_value("gateway_upstream_errors_total", {"kind": "connect_refused"})
            >= 1
        )
    finally:
        await runner.cleanup()


async def test_slow_upstream_gives_504(gateway):
    async with aiohttp.ClientSession() as s, s.get(gateway.url + "/slow?s=3") as r:
        assert r.status == 504
        assert await r.json() == {"error": "gateway_timeout"}


async def test_head_and_204_have_no_body(gateway):
    status, raw = await raw_request(
        gateway.port, b"HEAD /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    )
    assert status == 200
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Content-Length: " in head and body == b""
    status, raw = await raw_request(
        gateway.port, b"GET /nocontent HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    )
    assert status == 204 and raw.partition(b"\r\n\r\n")[2] == b""


async def test_chunked_request_and_expect_100_continue(gateway):
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(
        b"POST /sink HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    await writer.drain()
    rest = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert rest.startswith(b"HTTP/1.1 200") and b'"received": 11' in rest


async def test_keepalive_reuses_upstream_connections(gateway, upstream):
    async with aiohttp.ClientSession() as s:
        for _ in range(20):
            async with s.get(gateway.url + "/x") as r:
                assert r.status == 200
    peers = {dict(h)["X-Forwarded-For"] for h in (dict(e["headers"]) for e in upstream.seen)}
    assert peers == {"127.0.0.1"}
    conns = [
        c
        for c in psutil.Process().net_connections("tcp")
        if c.raddr and c.raddr.port == upstream.port
    ]
    assert 1 <= len(conns) <= 2


async def test_client_disconnect_mid_download_leaks_no_connection(gateway, upstream):
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(f"GET /big?bytes={512 * MiB} HTTP/1.1\r\nHost: gw\r\n\r\n".encode())
        await writer.drain()
        await reader.readexactly(4 * MiB)
        writer.transport.abort()
    await asyncio.sleep(1.0)
    conns = [
        c
        for c in psutil.Process().net_connections("tcp")
        if c.raddr and c.raddr.port == upstream.port and c.status == "ESTABLISHED"
    ]
    assert conns == []
    assert len([t for t in asyncio.all_tasks() if "handle" in repr(t.get_coro())]) == 0


async def test_websocket_echo_and_close_code_pass_through(gateway):
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(
            gateway.url.replace("http", "ws") + "/ws", protocols=("chat",)
        ) as ws:
            assert ws.protocol == "chat"
            await ws.send_str("hi")
            assert (await ws.receive()).data == "echo:hi"
            await ws.send_bytes(b"abc")
            assert (await ws.receive()).data == b"cba"
            await ws.send_str("close-4001")
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 4001 or msg.data == 4001
