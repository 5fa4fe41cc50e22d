"""Authenticated request path benchmark: a signed-in GET through the gateway against the same GET
on a public route and against the upstream directly, all on loopback in one run.

    python bench/auth_path.py [--duration 5] [--connections 32] [--rounds 2] [--store sqlite]
                              [--compare /path/to/other/checkout] [--profile 10]

Starts an aiohttp+uvloop upstream (bench/proxy.py's: /small and /auth/small, ~100 B each) and the
gateway (workers: 1, store in a temp dir or a redis-server it starts, policy: /auth/** needs a
signed-in user, everything else public, no encryption), adds a user with `gateway.cli users add`,
logs in once and drives with wrk: the upstream's /small, the gateway's public /small and the
gateway's /auth/small with the session cookie (`wrk -H "Cookie: ..."`). Every configuration runs
--rounds times, alternating, and the median is printed with the CPU time of the gateway process
per request.

--compare ROOT starts a second gateway from another source tree (e.g. `git archive` of an older
commit) with the same config and measures it in the same alternation, so a before/after pair
shares the machine's load. Every process it started is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

import aiohttp
from _harness import (
    ROOT,
    Processes,
    Result,
    add_user,
    fmt_ms,
    free_port,
    harness,
    launch_gateway,
    login_cookie,
    probe,
    profile_gateway,
    run_wrk,
    start_redis,
    start_upstream,
    write_gateway_config,
    wrk_arguments,
    wrk_missing,
)

POLICY = """\
rules:
  - name: auth
    match: {paths: ["/auth/**"]}
    access: authenticated
  - name: public
    match: {paths: ["/**"]}
    access: public
"""


def start_gateway(
    ps: Processes, tmp: Path, root: Path, name: str, upstream: str, store: str
) -> tuple[str, int]:
    """A gateway from the source tree `root` in its own dir under `tmp`; (base url, pid)."""
    home = tmp / name
    home.mkdir()
    port = free_port()
    store_url = None  # a SQLite file in `home`
    if store.startswith("redis"):  # two gateways on one redis: keep their keys apart
        store_url = store.rsplit("/", 1)[0] + ("/1" if name != "gateway" else "/0")
    config = write_gateway_config(home, port, upstream, store=store_url)
    (home / "policies" / "bench.yaml").write_text(POLICY)
    add_user(config, root)
    return launch_gateway(ps, name, config, port, home / "gateway.log", root)


async def checked_login_cookie(base: str) -> str:
    """A fresh session cookie, checked to open /auth/small, which refuses a request without it."""
    cookie = await login_cookie(base)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async with session.get(base + "/auth/small", headers={"Cookie": cookie}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"/auth/small with the cookie: HTTP {resp.status}")
        async with session.get(
            base + "/auth/small", headers={"Accept": "application/json"}, allow_redirects=False
        ) as resp:
            if resp.status != 401:
                raise RuntimeError(f"/auth/small without a cookie: HTTP {resp.status}, not 401")
    return cookie


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    wrk_arguments(parser)
    parser.add_argument("--rounds", type=int, default=2, help="runs per configuration")
    parser.add_argument("--store", default="sqlite", help="sqlite (temp file) or redis")
    parser.add_argument("--compare", type=Path, help="a second source tree to measure alongside")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="SECONDS", help="py-spy the auth route"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    args = parser.parse_args(argv)
    if wrk_missing():
        return 1
    return harness(run, args, "portcullis-bench-auth-")


def run(ps: Processes, tmp: Path, args: argparse.Namespace) -> int:
    upstream, upstream_pid = start_upstream(ps, tmp)
    store = start_redis(ps, tmp) if args.store == "redis" else "sqlite"
    gateways = {"gateway": ROOT}
    if args.compare:
        gateways["compare"] = args.compare.resolve()
    # (label, url, pid, extra wrk args)
    targets: list[tuple[str, str, int, list[str]]] = [
        ("direct", upstream + "/small", upstream_pid, [])
    ]
    for name, root in gateways.items():
        base, pid = start_gateway(ps, tmp, root, name, upstream, store)
        cookie = asyncio.run(checked_login_cookie(base))
        status, _ = probe(base + "/small")
        if status != 200:
            raise RuntimeError(f"{name} /small: HTTP {status}")
        targets.append((f"{name} public", base + "/small", pid, []))
        targets.append((f"{name} auth", base + "/auth/small", pid, ["-H", f"Cookie: {cookie}"]))

    load = os.getloadavg()
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} rounds "
        f"(alternating), median shown; store {args.store}; {os.cpu_count()} CPU cores; "
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    if args.compare:
        print(f"gateway = {ROOT}; compare = {args.compare.resolve()}")
    results: dict[str, list[Result]] = {t[0]: [] for t in targets}
    for rnd in range(args.rounds):
        for label, url, pid, extra in targets:
            r = run_wrk(ps, tmp, url, args, pid, extra=extra)
            results[label].append(r)
            print(
                f"  .. round {rnd + 1} {label:15} {r.rps:9.0f} req/s {r.cpu_us:6.0f}us CPU/req",
                file=sys.stderr,
                flush=True,
            )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    def med(label: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in results[label])

    header = f"{'target':16} {'req/s':>9} {'p50':>9} {'p99':>9} {'vs direct':>10} {'CPU/req':>9}"
    header += f" {'vs public':>10}  runs (req/s)"
    print()
    print(header)
    print("-" * len(header))
    direct = med("direct", "rps")
    for label, *_ in targets:
        rps = med(label, "rps")
        vs_public = ""
        if label.endswith(" auth"):
            public = med(label.replace(" auth", " public"), "rps")
            vs_public = f"{100 * rps / public:9.0f}%"
        runs = " ".join(f"{r.rps:.0f}" for r in results[label])
        print(
            f"{label:16} {rps:9.0f} {fmt_ms(med(label, 'p50_ms')):>9}"
            f" {fmt_ms(med(label, 'p99_ms')):>9} {100 * rps / direct:9.0f}%"
            f" {med(label, 'cpu_us'):7.0f}us {vs_public:>10}  {runs}"
        )
        errors = {r.errors for r in results[label] if r.errors}
        for e in errors:
            print(f"  ! {label}: {e}")
    print("CPU/req: user+system CPU of the gateway process per request (direct: the upstream's).")
    if args.profile:
        _, url, pid, extra = targets[2]
        profile_gateway(ps, tmp, pid, url, args, extra=extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
