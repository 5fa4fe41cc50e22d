"""Large-body benchmark: stream 1 GiB through the gateway with `body: true` encryption on the
way up and decryption on the way down; print MiB/s and the gateway's peak RSS.

    python bench/large_body.py [--mib 1024] [--chunk-kib 256] [--held-mib 8]

Starts, each in its own process: an aiohttp+uvloop upstream that writes each POSTed body to a
file in the temp dir as it arrives and serves it back with sendfile, and the gateway (workers:
1, SQLite store, a KEK file, one user added with the CLI; one rule /enc/** `authenticated`
with `encrypt: {request: {body: true}, response: body}`). This process sends the body from a
generator (never whole in memory) and hashes what comes back, for the gateway and, as the
ceiling, for the upstream directly. A thread samples the gateway process's RSS (psutil) every
20 ms: memory must stay flat, whatever the body size. Every process it started is stopped on
exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
from _harness import (
    Processes,
    add_user,
    free_port,
    harness,
    launch_gateway,
    login_cookie,
    run_app,
    start_upstream,
    write_gateway_config,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.crypto.envelope import envelope_length  # noqa: E402
from gateway.crypto.keyring import generate_kek  # noqa: E402

MIB = 1 << 20
POLICY = """rules:
  - name: enc
    match: {paths: ["/enc/**"]}
    access: authenticated
    encrypt: {request: {body: true}, response: body}
"""
CONTENT_TYPE = "application/octet-stream"

# ----------------------------------------------------------------------------- upstream app


def serve_upstream(port: int, directory: str) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[-1]
        if not name.isalnum():
            return web.Response(status=400)
        path = Path(directory) / name
        if request.method == "POST":
            size = 0
            with open(path, "wb") as out:
                async for chunk in request.content.iter_chunked(256 * 1024):
                    out.write(chunk)
                    size += len(chunk)
            (path.with_suffix(".type")).write_text(request.headers.get("Content-Type", ""))
            return web.Response(status=204, headers={"X-Stored-Bytes": str(size)})
        if request.path == "/health":
            return web.Response(text="ok")
        if not path.exists():
            return web.Response(status=404)
        ctype = path.with_suffix(".type").read_text() or CONTENT_TYPE
        return web.FileResponse(path, headers={"Content-Type": ctype})

    app = web.Application(client_max_size=0)
    app.router.add_route("*", "/{tail:.*}", handle)
    run_app(app, port)


# ----------------------------------------------------------------------------- measuring


class PeakRss:
    """Peak RSS of one process, sampled from a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> tuple[int, int]:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.start, self.peak


def body(total: int, chunk: int, digest: hashlib._Hash) -> AsyncIterator[bytes]:
    block = os.urandom(chunk)

    async def gen() -> AsyncIterator[bytes]:
        sent = 0
        index = 0
        while sent < total:
            # Each chunk differs, so a reordered or repeated segment would change the hash.
            piece = index.to_bytes(8, "big") + block[8 : min(chunk, total - sent)]
            digest.update(piece)
            sent += len(piece)
            index += 1
            yield piece

    return gen()


async def upload(url: str, total: int, chunk: int, cookie: str) -> tuple[float, str, int]:
    """(seconds, sha256 sent, bytes the upstream stored)."""
    digest = hashlib.sha256()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        start = time.perf_counter()
        async with session.post(
            url,
            data=body(total, chunk, digest),
            headers={"Cookie": cookie, "Content-Type": CONTENT_TYPE},
        ) as resp:
            await resp.read()
            if resp.status != 204:
                raise RuntimeError(f"POST {url}: HTTP {resp.status}")
            stored = int(resp.headers.get("X-Stored-Bytes", "0"))
        return time.perf_counter() - start, digest.hexdigest(), stored


async def download(url: str, chunk: int, cookie: str) -> tuple[float, str, int, str]:
    """(seconds, sha256 received, bytes, content type)."""
    digest = hashlib.sha256()
    size = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        start = time.perf_counter()
        async with session.get(url, headers={"Cookie": cookie}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"GET {url}: HTTP {resp.status}")
            async for data in resp.content.iter_chunked(chunk):
                digest.update(data)
                size += len(data)
            ctype = resp.headers.get("Content-Type", "")
        return time.perf_counter() - start, digest.hexdigest(), size, ctype


# ----------------------------------------------------------------------------- main


def run(ps: Processes, tmp: Path, args: argparse.Namespace) -> int:
    total = args.mib * MIB
    chunk = args.chunk_kib * 1024
    (tmp / "blobs").mkdir()
    upstream, _ = start_upstream(ps, tmp, __file__, str(tmp / "blobs"), health="/health")
    port = free_port()
    (tmp / "kek1").write_text(generate_kek() + "\n")
    extra = (
        "passwords:\n  argon2: {time_cost: 1, memory_cost: 1024, parallelism: 1}\n"
        "keys: {active: k1, kek: {k1: 'file:kek1'}}\n"
        f"max_body: {2 * args.mib + 64}MiB\n"
    )
    config = write_gateway_config(tmp, port, upstream, access="authenticated", extra=extra)
    text = config.read_text().replace(
        f"upstream: {{url: {upstream}}}", f"upstream: {{url: {upstream}, timeout: 600s}}"
    )
    config.write_text(text)
    (tmp / "policies" / "bench.yaml").write_text(POLICY)
    add_user(config)
    gateway, gateway_pid = launch_gateway(ps, "gateway", config, port, tmp / "gateway.log")
    cookie = asyncio.run(login_cookie(gateway))

    print(
        f"{args.mib} MiB body, {args.chunk_kib} KiB client chunks, loopback; {os.cpu_count()}"
        " CPU cores shared by this client (generating and hashing), the upstream (writing to"
        " disk) and the gateway."
    )
    print(f"1-minute load average before the runs: {os.getloadavg()[0]:.2f}")

    up_s, up_hash, up_stored = asyncio.run(upload(upstream + "/raw/direct", total, chunk, ""))
    down_s, down_hash, down_size, _ = asyncio.run(download(upstream + "/raw/direct", chunk, ""))
    if up_stored != total or down_size != total or up_hash != down_hash:
        raise RuntimeError("direct round trip lost bytes")

    rss = PeakRss(gateway_pid)
    enc_s, sent_hash, stored = asyncio.run(upload(gateway + "/enc/big", total, chunk, cookie))
    up_start, up_peak = rss.stop()
    expected = envelope_length(total, CONTENT_TYPE)
    if stored != expected:
        raise RuntimeError(f"upstream stored {stored} bytes, expected an envelope of {expected}")
    with open(tmp / "blobs" / "big", "rb") as f:
        if f.read(4) != b"\xc7GWE":
            raise RuntimeError("the upstream did not receive an envelope")
    rss = PeakRss(gateway_pid)
    dec_s, got_hash, got_size, ctype = asyncio.run(download(gateway + "/enc/big", chunk, cookie))
    down_start, down_peak = rss.stop()
    if got_size != total or got_hash != sent_hash or ctype != CONTENT_TYPE:
        raise RuntimeError("decrypted body differs from what was sent")

    def mibs(seconds: float) -> float:
        return total / MIB / seconds

    print()
    print(f"{'path':38} {'MiB/s':>8} {'seconds':>8} {'vs direct':>10}")
    rows = [
        ("direct upload (upstream only)", up_s, up_s),
        ("direct download (upstream only)", down_s, down_s),
        ("gateway upload, encrypt (body: true)", enc_s, up_s),
        ("gateway download, decrypt (response)", dec_s, down_s),
    ]
    for name, seconds, base in rows:
        print(f"{name:38} {mibs(seconds):8.0f} {seconds:8.2f} {100 * base / seconds:9.0f}%")
    print(
        f"\nenvelope on the upstream's disk: {expected} bytes for {total} bytes of plaintext"
        f" (+{expected - total} B, {100 * (expected - total) / total:.3f}%)"
    )
    print(
        f"gateway RSS: encrypt {up_start / MIB:.1f} -> peak {up_peak / MIB:.1f} MiB"
        f" (+{(up_peak - up_start) / MIB:.1f}); decrypt {down_start / MIB:.1f} -> peak"
        f" {down_peak / MIB:.1f} MiB (+{(down_peak - down_start) / MIB:.1f})"
    )
    growth = max(up_peak - up_start, down_peak - down_start)
    verdict = "flat" if growth < 64 * MIB else "NOT flat"
    print(f"memory: {verdict} (largest growth {growth / MIB:.1f} MiB for a {args.mib} MiB body)")
    (tmp / "blobs" / "big").unlink(missing_ok=True)
    (tmp / "blobs" / "direct").unlink(missing_ok=True)
    held(gateway, gateway_pid, cookie, args)
    return 0


def held(gateway: str, pid: int, cookie: str, args: argparse.Namespace) -> None:
    """A body within the bound (min(max_body, 16 MiB)) is verified whole before its first
    byte leaves: how fast, and how much the gateway holds while doing it."""
    total = args.held_mib * MIB
    chunk = args.chunk_kib * 1024
    _, sent_hash, _ = asyncio.run(upload(gateway + "/enc/small", total, chunk, cookie))
    rss = PeakRss(pid)
    seconds = []
    for _ in range(args.held_runs):
        took, got_hash, size, _ = asyncio.run(download(gateway + "/enc/small", chunk, cookie))
        if size != total or got_hash != sent_hash:
            raise RuntimeError("held-back download differs from what was sent")
        seconds.append(took)
    start, peak = rss.stop()
    best = min(seconds)
    print(
        f"\nheld back and verified whole ({args.held_mib} MiB, within the bound):"
        f" best of {args.held_runs} {total / MIB / best:.0f} MiB/s ({best * 1000:.0f} ms);"
        f" gateway RSS {start / MIB:.1f} -> peak {peak / MIB:.1f} MiB (+{(peak - start) / MIB:.1f})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="body size in MiB")
    parser.add_argument("--chunk-kib", type=int, default=256, help="client chunk size")
    parser.add_argument("--held-mib", type=int, default=8, help="body size within the bound")
    parser.add_argument("--held-runs", type=int, default=5, help="downloads of that body")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    parser.add_argument("--serve-upstream", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream:
        serve_upstream(int(args.serve_upstream[0]), args.serve_upstream[1])
        return 0
    return harness(run, args, "portcullis-bench-large-")


if __name__ == "__main__":
    sys.exit(main())
