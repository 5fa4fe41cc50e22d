"""Proxy throughput benchmark: the gateway against a direct upstream, a minimal aiohttp proxy and
nginx, all on loopback in one run.

    python bench/proxy.py [--duration 5] [--connections 32] [--threads 2] [--profile 10]

Starts, each in its own process: an aiohttp+uvloop upstream (/small ~100 B, /1m 1 MiB), the
gateway (`python -m gateway.cli -c TMP/gateway.yaml run`, workers: 1), bench/minimal_proxy.py
and, if /usr/sbin/nginx exists, nginx with an upstream keepalive pool. Then drives every target
with wrk and prints requests/s, p50, p99 and the ratios to the direct upstream and to the
minimal proxy. Every process it started is stopped on exit, Ctrl-C or error.

Numbers are only comparable within one run on one machine: wrk runs on the same cores as the
servers it measures.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _harness import (
    NGINX,
    Processes,
    Result,
    fmt_ms,
    free_port,
    harness,
    launch_gateway,
    probe,
    profile_gateway,
    run_app,
    run_wrk,
    start_minimal,
    start_nginx,
    start_upstream,
    tail,
    write_gateway_config,
    wrk_arguments,
    wrk_missing,
)

SMALL_BODY = b"portcullis-bench " + b"x" * 82 + b"\n"  # 100 bytes
ONE_MIB = 1 << 20
RESPONSES = (("small", "/small"), ("1 MiB", "/1m"))
AIM = 0.80

# ----------------------------------------------------------------------------- upstream app


def serve_upstream(port: int) -> None:
    """The upstream: a tiny aiohttp app on uvloop (runs in its own process)."""
    from aiohttp import web

    big = os.urandom(ONE_MIB)

    async def small(_: web.Request) -> web.Response:
        return web.Response(body=SMALL_BODY, content_type="text/plain")

    async def one_mib(_: web.Request) -> web.Response:
        return web.Response(body=big, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/small", small)
    app.router.add_get("/auth/small", small)  # bench/auth_path.py's authenticated route
    app.router.add_get("/1m", one_mib)
    run_app(app, port, backlog=1024, shutdown_timeout=1)


# ----------------------------------------------------------------------------- targets


def start_gateway(ps: Processes, tmp: Path, upstream: str) -> tuple[str, int]:
    port = free_port()
    config = write_gateway_config(tmp, port, upstream)
    # the gateway's JSON app + access log (one line per request)
    return launch_gateway(ps, "gateway", config, port, tmp / "gateway.log")


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    wrk_arguments(parser)
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="afterwards, py-spy the gateway this long under wrk load on /small",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    if wrk_missing():
        return 1

    return harness(run, args, "portcullis-bench-", mode=0o755)  # nginx may run as nobody


def run(ps: Processes, tmp: Path, args: argparse.Namespace) -> int:
    cores = os.cpu_count() or 0
    upstream, upstream_pid = start_upstream(ps, tmp)
    pids = {"direct": upstream_pid}
    targets: dict[str, str] = {"direct": upstream}
    targets["minimal"], pids["minimal"] = start_minimal(ps, tmp, upstream)
    targets["gateway"], pids["gateway"] = start_gateway(ps, tmp, upstream)
    nginx = start_nginx(ps, tmp, upstream)
    if nginx:
        targets["nginx"], pids["nginx"] = nginx

    for name, base in targets.items():
        for _, path in RESPONSES:
            status, size = probe(base + path)
            expected = len(SMALL_BODY) if path == "/small" else ONE_MIB
            if status != 200 or size != expected:
                raise RuntimeError(
                    f"{name} {path}: status {status}, {size} bytes (expected 200, {expected})"
                    f"\n{tail(tmp / 'gateway.log')}"
                )

    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s on loopback; "
        f"{cores} CPU cores. wrk shares these cores with the server under test and, for the "
        "proxies, with the upstream: read the ratios, not the absolutes."
    )
    load1 = os.getloadavg()[0]
    print(f"1-minute load average before the runs: {load1:.2f}", end="")
    print(" (other work on this machine skews the figures)" if load1 > 0.5 else "")
    if not nginx:
        print(f"nginx: {NGINX} not found, skipped")
    results: dict[tuple[str, str], Result] = {}
    for label, path in RESPONSES:
        for name, base in targets.items():
            results[name, label] = run_wrk(ps, tmp, base + path, args, pids[name])
            r = results[name, label]
            print(f"  .. {name:8} {label:6} {r.rps:10.0f} req/s", file=sys.stderr, flush=True)

    header = f"{'target':10} {'response':9} {'req/s':>10} {'p50':>9} {'p99':>9}"
    header += f" {'vs direct':>10} {'vs minimal':>11} {'CPU/req':>9}"
    print()
    print(header)
    print("-" * len(header))
    notes = []
    for label, _ in RESPONSES:
        direct = results["direct", label].rps
        minimal = results["minimal", label].rps
        for name in targets:
            r = results[name, label]
            print(
                f"{name:10} {label:9} {r.rps:10.0f} {fmt_ms(r.p50_ms):>9} {fmt_ms(r.p99_ms):>9}"
                f" {100 * r.rps / direct:9.0f}% {100 * r.rps / minimal:10.0f}%"
                f" {r.cpu_us:7.0f}us"
            )
            if r.errors:
                notes.append(f"{name} {label}: {r.errors}")
    for note in notes:
        print(f"  ! {note}")
    print(
        "CPU/req: user+system CPU of the target's own processes (not the upstream's, not wrk's)"
        " per request; steadier than req/s when the machine is shared."
    )
    ratio = results["gateway", "small"].rps / results["minimal", "small"].rps
    verdict = "meets" if ratio >= AIM else "below"
    print(f"\ngateway/minimal (small): {100 * ratio:.0f}% ({verdict} the {100 * AIM:.0f}% aim)")
    log = tmp / "gateway.log"
    if log.exists():
        print(f"(gateway access log written during the run: {log.stat().st_size / 1e6:.1f} MB)")

    if args.profile:
        profile_gateway(ps, tmp, pids["gateway"], targets["gateway"] + "/small", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
