"""Fixtures for proxy tests: a real upstream app and the gateway, both on free loopback ports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from gateway.config import Config, parse_config
from gateway.startup.assemble import build


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Upstream:
    url: str
    port: int
    seen: list[dict] = field(default_factory=list)


def upstream_app(seen: list[dict]) -> web.Application:
    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": list(request.headers.items()),
                "body_len": len(body),
            }
        )
        return web.json_response(
            {
                "raw_path": request.raw_path,
                "headers": list(request.headers.items()),
                "body_len": len(body),
            }
        )

    async def sink(request: web.Request) -> web.StreamResponse:
        total = 0
        async for chunk in request.content.iter_any():
            total += len(chunk)
        return web.json_response({"received": total})

    async def big(request: web.Request) -> web.StreamResponse:
        size = int(request.query["bytes"])
        resp = web.StreamResponse(headers={"Content-Length": str(size)})
        await resp.prepare(request)
        block = b"x" * (1 << 20)
        left = size
        while left:
            n = min(left, len(block))
            await resp.write(block[:n])
            left -= n
        return resp

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(float(request.query.get("s", "5")))
        return web.Response(text="late")

    async def redirect(request: web.Request) -> web.StreamResponse:
        host = request.host
        return web.Response(status=302, headers={"Location": f"http://{host}/landing?a=1"})

    async def nocontent(request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async def hop(request: web.Request) -> web.StreamResponse:
        return web.Response(
            text="hop",
            headers={
                "Connection": "X-Secret-Hop",
                "X-Secret-Hop": "1",
                "Set-Cookie": "gateway_session=forged; Path=/",
            },
        )

    async def ws(request: web.Request) -> web.StreamResponse:
        sock = web.WebSocketResponse(protocols=("chat",))
        await sock.prepare(request)
        async for msg in sock:
            if msg.data == "close-4001":
                await sock.close(code=4001, message=b"bye")
                break
            if msg.type == web.WSMsgType.TEXT:
                await sock.send_str("echo:" + msg.data)
            elif msg.type == web.WSMsgType.BINARY:
                await sock.send_bytes(msg.data[::-1])
        return sock

    app = web.Application(client_max_size=2 << 30)
    app.router.add_route("POST", "/sink", sink)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/nocontent", nocontent)
    app.router.add_get("/hop", hop)
    app.router.add_get("/ws", ws)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    seen: list[dict] = []
    runner = web.AppRunner(upstream_app(seen), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Upstream(f"http://127.0.0.1:{port}", port, seen)
    await runner.cleanup()


async def start_gateway(config: Config) -> web.AppRunner:
    app, _ = await build(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.listen_host, config.listen_port).start()
    return runner


PUBLIC_POLICY = """rules:
  - name: everything
    match: {paths: ["/**"]}
    access: public
"""


def gateway_config(upstream_url: str, tmp_path: Path, **overrides: object) -> Config:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    if not any(policies.iterdir()):
        (policies / "00-test.yaml").write_text(PUBLIC_POLICY)
    data: dict = {
        "listen": f"127.0.0.1:{free_port()}",
        "upstream": {"url": upstream_url, "timeout": "1s", "connect_timeout": "1s"},
        "max_body": "1MiB",
        "store": {"url": f"sqlite:///{tmp_path}/gw.db"},
        "metrics": {"listen": None},
    }
    data.update(overrides)
    return parse_config(data, base_dir=tmp_path)


@dataclass
class Gw:
    url: str
    port: int
    config: Config


@pytest.fixture
async def gateway(upstream: Upstream, tmp_path: Path) -> AsyncIterator[Gw]:
    config = gateway_config(upstream.url, tmp_path)
    runner = await start_gateway(config)
    yield Gw(f"http://127.0.0.1:{config.listen_port}", config.listen_port, config)
    await runner.cleanup()


async def raw_request(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send bytes on a fresh socket, return (status, whole response) — no client normalization."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        raw = await asyncio.wait_for(reader.read(1 << 20), timeout)
        while b"\r\n\r\n" in raw and not _complete(raw):
            more = await asyncio.wait_for(reader.read(1 << 20), timeout)
            if not more:
                break
            raw += more
    finally:
        writer.close()
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0
    return status, raw


def _complete(raw: bytes) -> bool:
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True
