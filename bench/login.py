"""Login benchmark: JSON logins/s through the gateway against bare Argon2id verifies/s, and the
latency of an authenticated proxied GET while logins run, all in one run.

    python bench/login.py [--duration 10] [--concurrency 20] [--get-clients 4]

1. Baseline: argon2-cffi `PasswordHasher` (the config's defaults: time_cost 2, memory_cost
   19456 KiB, parallelism 1, Argon2id) verifying a known password in a ThreadPoolExecutor of
   --concurrency threads, in this process, before any server starts. A login costs exactly one
   such verify, so this is the ceiling for logins/s.
2. Starts an aiohttp+uvloop upstream (bench/proxy.py's) and the gateway (workers: 1, SQLite store
   in a temp dir, one policy: everything `authenticated`), adds a user with
   `gateway.cli users add --password-stdin`, then --concurrency aiohttp clients POST JSON to
   /.gateway/login for --duration seconds.
3. Logs in once and measures the p50/p99 of GET /small through the gateway with that cookie from
   --get-clients paced clients (one request each, then a --get-pause pause): idle, then while the
   concurrent logins of step 2 run again.

All load comes from one asyncio process (this one) on the same cores as the gateway: the ratios
are what to read. Every process it started is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from _harness import (
    ROOT,
    Processes,
    free_port,
    gateway_env,
    harness,
    launch_gateway,
    start_upstream,
    tail,
    write_gateway_config,
)
from argon2 import PasswordHasher, Type

USER = "bench"
PASSWORD = "bench-password-0123456789"  # >= 12 chars (passwords.min_length)
TIME_COST, MEMORY_COST, PARALLELISM = 2, 19456, 1  # gateway/config.py Argon2Params defaults
LOGIN_AIM = 0.90

# ----------------------------------------------------------------------------- baseline


def argon2_baseline(threads: int, duration: float) -> tuple[float, int]:
    """(verifies/s, count) of `threads` threads verifying in a loop for `duration` seconds."""
    ph = PasswordHasher(
        time_cost=TIME_COST, memory_cost=MEMORY_COST, parallelism=PARALLELISM, type=Type.ID
    )
    encoded = ph.hash(PASSWORD)
    counts = [0] * threads
    stop = threading.Event()

    def work(i: int) -> None:
        while not stop.is_set():
            ph.verify(encoded, PASSWORD)
            counts[i] += 1

    with ThreadPoolExecutor(max_workers=threads) as pool:
        ph.verify(encoded, PASSWORD)  # warm up
        start = time.perf_counter()
        futures = [pool.submit(work, i) for i in range(threads)]
        time.sleep(duration)
        stop.set()
        for f in futures:
            f.result()
        elapsed = time.perf_counter() - start
    total = sum(counts)
    return total / elapsed, total


# ----------------------------------------------------------------------------- gateway


def write_config(tmp: Path, port: int, upstream: str) -> Path:
    argon2 = (
        f"passwords:\n  argon2: {{time_cost: {TIME_COST}, memory_cost: {MEMORY_COST},"
        f" parallelism: {PARALLELISM}}}\n"
        # 20 concurrent logins of one account hold 20 lockout reservations at once: lift the
        # limits so the bench measures Argon2 and the login path, not the regulator.
        "lockout: {max_failures: 1000000, ip_max_failures: 1000000}\n"
    )
    return write_gateway_config(tmp, port, upstream, access="authenticated", extra=argon2)


def start_gateway(ps: Processes, tmp: Path, config: Path, port: int) -> tuple[str, int]:
    return launch_gateway(ps, "gateway", config, port, tmp / "gateway.log")


def add_user(config: Path, root: Path = ROOT) -> None:
    """`gateway.cli users add USER --password-stdin` with the source tree `root`."""
    argv = [sys.executable, "-m", "gateway.cli", "-c", str(config), "users", "add", USER]
    done = subprocess.run(
        [*argv, "--password-stdin"],
        input=PASSWORD + "\n",
        text=True,
        capture_output=True,
        cwd=str(root),
        env=gateway_env(root),
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"users add exited {done.returncode}: {done.stderr or done.stdout}")


# ----------------------------------------------------------------------------- load


class LoginLoad:
    """`concurrency` clients POSTing JSON logins back to back until stopped."""

    def __init__(self, base: str, concurrency: int) -> None:
        self.url = base + "/.gateway/login"
        self.concurrency = concurrency
        self.ok = 0
        self.failed: dict[str, int] = {}
        self.stop = asyncio.Event()

    async def run(self, duration: float) -> float:
        """Logins/s over `duration` seconds (only 200s counted)."""
        connector = aiohttp.TCPConnector(limit=0)
        jar = aiohttp.DummyCookieJar()  # every login starts without a session cookie
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
            start = time.perf_counter()
            tasks = [asyncio.create_task(self._client(session)) for _ in range(self.concurrency)]
            await asyncio.sleep(duration)
            self.stop.set()
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - start
        return self.ok / elapsed

    async def _client(self, session: aiohttp.ClientSession) -> None:
        body = {"username": USER, "password": PASSWORD}
        while not self.stop.is_set():
            try:
                async with session.post(self.url, json=body) as resp:
                    await resp.read()
                    if resp.status == 200:
                        self.ok += 1
                    else:
                        key = f"HTTP {resp.status}"
                        self.failed[key] = self.failed.get(key, 0) + 1
            except aiohttp.ClientError as exc:
                key = type(exc).__name__
                self.failed[key] = self.failed.get(key, 0) + 1


async def login_cookie(base: str) -> str:
    """The Cookie header value of one fresh login."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        body = {"username": USER, "password": PASSWORD}
        async with session.post(base + "/.gateway/login", json=body) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise RuntimeError(f"login: HTTP {resp.status}: {text[:300]}")
            pairs = [f"{k}={m.value}" for k, m in resp.cookies.items() if m.value]
    if not pairs:
        raise RuntimeError("login: no session cookie set")
    return "; ".join(pairs)


async def timed_gets(
    url: str, cookie: str, clients: int, duration: float, pause: float
) -> tuple[list[float], int]:
    """(latencies in ms of the 200s, number of non-200s/errors)."""
    latencies: list[float] = []
    bad = 0
    deadline = time.perf_counter() + duration
    headers = {"Cookie": cookie}

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal bad
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                async with session.get(url, headers=headers, allow_redirects=False) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                bad += 1
            await asyncio.sleep(pause)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return latencies, bad


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=20, help="login clients and threads")
    parser.add_argument("--get-clients", type=int, default=4, help="authenticated GET clients")
    parser.add_argument(
        "--get-pause", type=float, default=0.01, help="seconds each GET client waits between GETs"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    args = parser.parse_args(argv)

    return harness(run, args, "portcullis-bench-login-")


def run(ps: Processes, tmp: Path, args: argparse.Namespace) -> int:
    n, dur = args.concurrency, args.duration
    cores = os.cpu_count() or 0
    print(
        f"{cores} CPU cores; Argon2id t={TIME_COST} m={MEMORY_COST} KiB p={PARALLELISM}; "
        f"{n} threads / {n} login clients; {dur:g}s per phase. Load generator, gateway and "
        "upstream share these cores: read the ratios."
    )
    load1 = os.getloadavg()[0]
    print(f"1-minute load average before the runs: {load1:.2f}", end="")
    print(" (other work on this machine skews the figures)" if load1 > 0.5 else "")

    print(f"  .. argon2 baseline, {n} threads", file=sys.stderr, flush=True)
    hashes_s, hashes = argon2_baseline(n, dur)

    upstream, _ = start_upstream(ps, tmp)
    port = free_port()
    config = write_config(tmp, port, upstream)
    add_user(config)
    base, _ = start_gateway(ps, tmp, config, port)
    try:
        return asyncio.run(measure(base, args, hashes_s, hashes))
    except Exception:
        print(tail(tmp / "gateway.log"), file=sys.stderr)
        raise


async def measure(base: str, args: argparse.Namespace, hashes_s: float, hashes: int) -> int:
    n, dur = args.concurrency, args.duration
    cookie = await login_cookie(base)
    url = base + "/small"
    lat, bad = await timed_gets(url, cookie, args.get_clients, 1.0, args.get_pause)  # warm up
    if not lat:
        raise RuntimeError(f"authenticated GET {url}: no 200 ({bad} failures)")

    print(f"  .. {n} concurrent logins", file=sys.stderr, flush=True)
    logins = LoginLoad(base, n)
    logins_s = await logins.run(dur)

    print("  .. authenticated GETs, idle", file=sys.stderr, flush=True)
    idle, idle_bad = await timed_gets(url, cookie, args.get_clients, dur, args.get_pause)

    print(f"  .. authenticated GETs under {n} concurrent logins", file=sys.stderr, flush=True)
    loaded_logins = LoginLoad(base, n)
    gets, (busy, busy_bad) = await asyncio.gather(
        loaded_logins.run(dur),
        timed_gets(url, cookie, args.get_clients, dur, args.get_pause),
    )

    ratio = logins_s / hashes_s
    print()
    header = f"{'Argon2 / login throughput':34} {'per s':>9} {'count':>7} {'vs hashes':>10}"
    print(header)
    print("-" * len(header))
    print(f"{'argon2 verify, ' + str(n) + ' threads':34} {hashes_s:9.1f} {hashes:7d} {100:9.0f}%")
    print(f"{'JSON login, ' + str(n) + ' clients':34} {logins_s:9.1f} {logins.ok:7d}", end="")
    print(f" {100 * ratio:9.0f}%")
    print(f"{'  (same, while GETs ran)':34} {gets:9.1f} {loaded_logins.ok:7d}", end="")
    print(f" {100 * gets / hashes_s:9.0f}%")
    verdict = "meets" if ratio >= LOGIN_AIM else "below"
    print(f"login path overhead: {100 * (1 - ratio):.1f}% ({verdict} the <10% aim)")

    print()
    c, pause_ms = args.get_clients, args.get_pause * 1000
    header = f"{'Authenticated GET /small':34} {'count':>7} {'p50':>9} {'p99':>9} {'errors':>7}"
    print(header)
    print("-" * len(header))
    i50, i99 = pct(idle, 50), pct(idle, 99)
    b50, b99 = pct(busy, 50), pct(busy, 99)
    print(f"{'idle':34} {len(idle):7d} {i50:7.2f}ms {i99:7.2f}ms {idle_bad:7d}")
    label = f"during {n} concurrent logins"
    print(f"{label:34} {len(busy):7d} {b50:7.2f}ms {b99:7.2f}ms {busy_bad:7d}")
    print(f"{'ratio (during / idle)':34} {'':7} {b50 / i50:8.1f}x {b99 / i99:8.1f}x")
    print(f"({c} GET clients, each pausing {pause_ms:g} ms between requests; same cookie)")
    for name, load in (("logins", logins), ("logins during GETs", loaded_logins)):
        if load.failed:
            print(f"  ! {name} failures: {load.failed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
