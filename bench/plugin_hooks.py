"""Plugin cost: what the hooks add per request, in-process and through a running gateway.

    python bench/plugin_hooks.py [--duration 5] [--connections 32] [--threads 2] [--micro-only]

1. In-process, per call (best of 5 runs of N calls): the hook dispatch the pipeline does with no
   plugins, security_headers.after_response, ip_allowlist.on_request, the api_keys check (SHA-256
   + constant-time compare, no store) and one with a SQLite store read, breached_passwords
   against the shipped offline list (a worker-thread file read), and for comparison one Argon2id
   verify with the config defaults (why API keys are not Argon2-hashed).
2. Through the gateway (a subprocess each, workers: 1, SQLite store, everything public), wrk on
   GET /small (~100 B) of bench/proxy.py's upstream, alternating: no plugins; security_headers +
   ip_allowlist (the rule allowed for 127.0.0.0/8) + api_keys without a key (hooks only); the
   same with an API key on every request (adds one store read per request, as a session does).

Prints figures; not a test. Numbers are comparable only within one run on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    ROOT,
    Processes,
    free_port,
    gateway_env,
    harness,
    run_wrk,
    start_upstream,
    wait_http,
    write_gateway_config,
)

PLUGINS_YAML = """plugins:
  - use: plugins.security_headers
  - use: plugins.ip_allowlist
    with: {rules: {bench: [127.0.0.0/8]}}
  - use: plugins.api_keys
"""


async def per_call(fn: Callable[[], Awaitable[object]], n: int) -> float:
    """Best of 5 runs: microseconds per call."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


async def micro() -> None:
    from aiohttp.test_utils import make_mocked_request
    from argon2 import PasswordHasher, Type
    from multidict import CIMultiDict

    from gateway.clock import SystemClock
    from gateway.hooks import EMPTY, PLUGINS
    from gateway.http.canonical import canonicalize
    from gateway.http.exchange import Exchange
    from gateway.http.headers import ClientView
    from gateway.store import open_store
    from plugins import api_keys, breached_passwords, ip_allowlist, security_headers

    request = make_mocked_request("GET", "/small")
    view = ClientView("127.0.0.1", "127.0.0.1", "https", "bench", "127.0.0.1")
    ex = Exchange(request, canonicalize("/small"), view, "rid", 0.0, rule_name="bench")
    services: dict[str, object] = {}

    async def dispatch() -> None:
        hooks = services.get(PLUGINS, EMPTY)
        if hooks.on_request or hooks.authenticate or hooks.before_forward:
            raise AssertionError
        if hooks.after_response:
            raise AssertionError

    headers_plugin = security_headers.Plugin(security_headers.Options())

    async def headers() -> None:
        h = CIMultiDict({"Content-Type": "text/plain", "Content-Length": "100", "Date": "x"})
        await headers_plugin.after_response(ex, h)

    allow = ip_allowlist.Plugin(
        ip_allowlist.Options(rules={"bench": ("10.0.0.0/8", "127.0.0.0/8")})
    )

    async def allowlist() -> None:
        await allow.on_request(ex)

    tmp = Path(tempfile.mkdtemp(prefix="portcullis-bench-plugins-"))
    store = await open_store(f"sqlite:///{tmp}/gw.db", base_dir=tmp)
    keys = api_keys.ApiKeys(store, SystemClock())
    key = await keys.create("bench", ["ci"])
    secret = key.split("_", 2)[2]
    digest = api_keys._digest(secret)

    async def key_hash_only() -> None:
        import hmac

        hmac.compare_digest(api_keys._digest(secret).encode(), digest.encode())

    async def key_with_store() -> None:
        assert await keys.verify(key) is not None

    breached = breached_passwords.Plugin(
        breached_passwords.Options(path=ROOT / "plugins" / "breached_passwords_data")
    )

    async def breach_check() -> None:
        await breached.check_password("u", "a fresh passphrase of mine")

    ph = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)
    argon_hash = ph.hash("bench password")

    async def argon2_verify() -> None:
        ph.verify(argon_hash, "bench password")

    rows = [
        ("hook dispatch, no plugins configured", dispatch, 200_000),
        ("security_headers.after_response", headers, 50_000),
        ("ip_allowlist.on_request (allowed)", allowlist, 50_000),
        ("api key check: SHA-256 + compare_digest", key_hash_only, 50_000),
        ("api key check with SQLite store read", key_with_store, 2_000),
        ("breached_passwords offline (thread read)", breach_check, 1_000),
        ("Argon2id verify, config defaults", argon2_verify, 5),
    ]
    print(f"{'in-process, per call':<45}{'us':>12}")
    for name, fn, n in rows:
        print(f"{name:<45}{await per_call(fn, n):>12.2f}")
    await store.close()


def start_gateway(ps: Processes, tmp: Path, upstream: str, extra: str, name: str) -> str:
    folder = tmp / name
    folder.mkdir()
    port = free_port()
    config = write_gateway_config(folder, port, upstream, extra=extra)
    env = gateway_env()
    env.setdefault("GATEWAY_KEK", "")
    log = folder / "gateway.log"
    argv = [sys.executable, "-m", "gateway.cli", "-c", str(config), "run", "--dev"]
    proc = ps.start(name, argv, log, cwd=str(ROOT), env=env)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/.gateway/healthz", proc, log)
    return base


def make_key(tmp: Path, name: str) -> str:
    argv = [sys.executable, "-m", "gateway.cli", "-c", str(tmp / name / "gateway.yaml")]
    done = subprocess.run(
        [*argv, "apikeys", "create", "bench", "--role", "ci"],
        env=gateway_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()[0]


def macro(ps: Processes, tmp: Path, args: argparse.Namespace) -> int:
    upstream, _ = start_upstream(ps, tmp)
    plain = start_gateway(ps, tmp, upstream, "", "plain")
    plugged = start_gateway(ps, tmp, upstream, PLUGINS_YAML, "plugged")
    key = make_key(tmp, "plugged")
    print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s GET /small on loopback")
    print(f"{'gateway':<48}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    key = f"Authorization: Bearer {key}"
    runs = [
        ("no plugins", plain, None),
        ("3 plugins, no key sent (no store read)", plugged, None),
        ("3 plugins, API key on every request", plugged, key),
    ]
    best: dict[str, float] = {}
    for _ in range(args.rounds):  # alternated: a neighbour's load hits both alike
        for name, base, header in runs:
            result = run_wrk(
                ps, tmp, base + "/small", args, extra=["-H", header] if header else None
            )
            best[name] = max(best.get(name, 0.0), result.rps)
            note = f"  ({result.errors})" if result.errors else ""
            print(
                f"{name:<48}{result.rps:>10.0f}{result.p50_ms:>10.2f}{result.p99_ms:>10.2f}{note}"
            )
    base_rps = best[runs[0][0]]
    for name, _, _ in runs[1:]:
        print(f"best req/s, {name} / no plugins: {best[name] / base_rps:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternating wrk runs per target")
    parser.add_argument("--micro-only", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    asyncio.run(micro())
    if args.micro_only:
        return 0
    return harness(macro, args, "portcullis-bench-plugins-")


if __name__ == "__main__":
    sys.exit(main())
