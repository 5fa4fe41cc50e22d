"""A 1 GiB upload on a `request: {body: true}` rule through the real gateway process: the
gateway's memory stays flat (RSS growth under 64 MiB, whatever the body size), and the upstream
receives exactly the envelope of the bytes sent, which opens to them with the user's data key.

tests/crypto/test_envelope_memory.py holds the library to the same bound in-process; this one
covers the whole streaming path (client socket, request transform, upstream socket)."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

from gateway.clock import SystemClock
from gateway.crypto.datakeys import DataKeys
from gateway.crypto.envelope import EnvelopeDecryptor, envelope_length, parse_header
from gateway.crypto.keyring import Keyring
from gateway.store import open_store
from tests.proxy.conftest import free_port
from tests.support.gateway_process import (
    PASSWORD,
    add_user,
    start_gateway,
    stop_gateway,
    write_config,
)

GIB = 1 << 30
MIB = 1 << 20
CHUNK = 256 * 1024 + 17  # deliberately not a multiple of the segment size
ALLOWED_GROWTH = 64 * MIB
CONTENT_TYPE = "application/octet-stream"
POLICY = """rules:
  - name: blob
    match: {paths: ["/blob/**"]}
    access: authenticated
    encrypt: {request: {body: true}}
"""


class Received:
    """What the upstream got: the envelope opened as it streamed in, hashed, never kept."""

    def __init__(self) -> None:
        self.key: bytes | None = None
        self.envelope_bytes = 0
        self.plaintext = hashlib.sha256()
        self.plaintext_bytes = 0
        self.content_type = ""


def upstream_app(received: Received) -> web.Application:
    async def store(request: web.Request) -> web.Response:
        assert received.key is not None
        head = bytearray()
        header = None
        async for chunk in request.content.iter_any():
            received.envelope_bytes += len(chunk)
            if header is None:
                head += chunk
                header = parse_header(head)
                if header is None:
                    continue
                decryptor = EnvelopeDecryptor(received.key, "user:alice", header)
                chunk = bytes(head[header.length :])
            out = decryptor.update(chunk)
            received.plaintext.update(out)
            received.plaintext_bytes += len(out)
        out = decryptor.finish()
        received.plaintext.update(out)
        received.plaintext_bytes += len(out)
        received.content_type = header.content_type
        return web.Response(status=204)

    async def warm(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application(client_max_size=0)
    app.router.add_post("/blob/warm", warm)
    app.router.add_post("/blob/big", store)
    return app


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.process.memory_info().rss) - self.start


async def body(sent: hashlib._Hash) -> AsyncIterator[bytes]:
    base = os.urandom(CHUNK)
    produced = index = 0
    while produced < GIB:
        # Each chunk differs (index stamped in): a reordered or repeated segment shows.
        chunk = index.to_bytes(8, "big") + base[8 : min(CHUNK, GIB - produced)]
        produced += len(chunk)
        index += 1
        sent.update(chunk)
        yield chunk


async def alice_key(folder: Path) -> bytes:
    kek = base64.b64decode((folder / "kek1").read_text().strip())
    store = await open_store(f"sqlite:///{folder}/gw.db", base_dir=folder)
    try:
        return await DataKeys(store, Keyring({"k1": kek}, "k1"), SystemClock()).get("user:alice", 1)
    finally:
        await store.close()


async def test_one_gib_encrypted_upload_keeps_the_gateway_flat(tmp_path: Path) -> None:
    received = Received()
    port = free_port()
    runner = web.AppRunner(upstream_app(received), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    upstream = {"url": f"http://127.0.0.1:{port}", "timeout": "120s", "connect_timeout": "2s"}
    config = write_config(tmp_path, upstream["url"], POLICY, upstream=upstream, max_body="2GiB")
    add_user(config, "alice")
    gw = start_gateway(config)
    timeout = aiohttp.ClientTimeout(total=300)
    try:
        async with gw.client() as client:
            login = {"username": "alice", "password": PASSWORD}
            async with client.post(gw.url + "/.gateway/login", json=login) as resp:
                assert resp.status == 200
            # The first encrypting request creates alice's data key; the upstream needs it.
            async with client.post(gw.url + "/blob/warm", data=b"warm up") as resp:
                assert resp.status == 204
            received.key = await alice_key(tmp_path)
            rss = PeakRss(gw.proc.pid)
            sent = hashlib.sha256()
            headers = {"Content-Type": CONTENT_TYPE, "Content-Length": str(GIB)}
            async with client.post(
                gw.url + "/blob/big", data=body(sent), headers=headers, timeout=timeout
            ) as resp:
                assert resp.status == 204
            growth = rss.stop()
    finally:
        stop_gateway(gw)
        await runner.cleanup()
    assert received.envelope_bytes == envelope_length(GIB, CONTENT_TYPE)
    assert received.plaintext_bytes == GIB
    assert received.plaintext.digest() == sent.digest()
    assert received.content_type == CONTENT_TYPE
    assert growth < ALLOWED_GROWTH, f"gateway RSS grew {growth / MIB:.1f} MiB"
