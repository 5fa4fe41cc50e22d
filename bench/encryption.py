"""Field-encryption benchmark: requests/s and latency of a small JSON body whose fields the
gateway seals (`json_fields`), against the same route unencrypted and the upstream directly;
and of a JSON answer whose tokens the gateway opens (`response: tokens`), likewise. One run.

    python bench/encryption.py [--duration 5] [--connections 32] [--threads 2]

Starts, each in its own process: an aiohttp+uvloop upstream (POST answers `{"ok":true}`; POST
.../store/NAME keeps the body, GET .../store/NAME serves it back as JSON) and the gateway
(workers: 1, SQLite store, a KEK file in the temp dir, one user added with the CLI). Two
`authenticated` rules differ only in encryption: /enc/** seals `$.note` and `$.items[*].text`
and opens tokens in answers, /plain/** does neither. wrk drives each target with the same
session cookie; the ratios are what to read (wrk, upstream and gateway share the cores).
Every process it started is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.request
from pathlib import Path

from _harness import (
    Processes,
    Result,
    fmt_ms,
    free_port,
    harness,
    run_app,
    run_wrk,
    start_upstream,
    write_gateway_config,
    wrk_arguments,
    wrk_missing,
)
from login import add_user, login_cookie, start_gateway

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.crypto.keyring import generate_kek  # noqa: E402

DOC = {
    "note": "call the supplier about the <late> delivery",
    "items": [{"text": "first line item"}, {"text": "second"}],
    "n": 7,
}
POLICY = """rules:
  - name: enc
    match: {paths: ["/enc/**"]}
    access: authenticated
    encrypt: {request: {json_fields: ["$.note", "$.items[*].text"]}, response: tokens}
  - name: plain
    match: {paths: ["/plain/**"]}
    access: authenticated
"""

# ----------------------------------------------------------------------------- upstream app


def serve_upstream(port: int) -> None:
    from aiohttp import web

    stored: dict[str, bytes] = {}
    ok = b'{"ok":true}'

    async def handle(request: web.Request) -> web.Response:
        _, sep, name = request.path.partition("/store/")
        if request.method == "POST":
            body = await request.read()
            if sep:
                stored[name] = body
            return web.Response(body=ok, content_type="application/json")
        if sep and name in stored:
            return web.Response(body=stored[name], content_type="application/json")
        return web.Response(body=ok, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    run_app(app, port, backlog=1024)


# ----------------------------------------------------------------------------- wrk


def lua(method: str, cookie: str, body: bytes | None) -> str:
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Cookie"] = {json.dumps(cookie)}']
    if body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {json.dumps(body.decode())}")
    return "\n".join(lines) + "\n"


def wrk(
    ps: Processes, tmp: Path, url: str, script: str, args: argparse.Namespace, pgid: int
) -> Result:
    """bench/proxy.py's wrk run with the Lua `script` (method, cookie, body)."""
    path = tmp / "wrk.lua"
    path.write_text(script)
    return run_wrk(ps, tmp, url, args, pgid, extra=["-s", str(path)])


def fetch(url: str, cookie: str, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Cookie": cookie})
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read()


# ----------------------------------------------------------------------------- main


def run(ps: Processes, tmp: Path, args: argparse.Namespace) -> int:
    upstream, upstream_pid = start_upstream(ps, tmp, __file__, health="/health")
    port = free_port()
    (tmp / "kek1").write_text(generate_kek() + "\n")
    extra = (
        "passwords:\n  argon2: {time_cost: 1, memory_cost: 1024, parallelism: 1}\n"
        "keys: {active: k1, kek: {k1: 'file:kek1'}}\n"
    )
    config = write_gateway_config(tmp, port, upstream, access="authenticated", extra=extra)
    (tmp / "policies" / "bench.yaml").write_text(POLICY)
    add_user(config)
    gateway, gateway_pid = start_gateway(ps, tmp, config, port)
    cookie = asyncio.run(login_cookie(gateway))
    body = json.dumps(DOC, separators=(",", ":")).encode()

    # Seed: one document sealed through the gateway; check both directions really work.
    status, _ = fetch(gateway + "/enc/store/doc", cookie, body)
    status2, _ = fetch(gateway + "/plain/store/plaindoc", cookie, body)
    _, sealed = fetch(upstream + "/x/store/doc", cookie)
    _, opened = fetch(gateway + "/enc/store/doc", cookie)
    sealed_doc = json.loads(sealed)
    if status != 200 or status2 != 200 or b"supplier" in sealed or json.loads(opened) != DOC:
        raise RuntimeError("encrypting route does not round-trip; see the gateway log")
    tokens = 1 + len(DOC["items"])
    assert sealed_doc["note"].startswith("gwe1.")

    cases = [
        (
            "POST small JSON",
            "POST",
            body,
            [
                ("direct", upstream + "/enc/x", upstream_pid),
                ("plain", gateway + "/plain/x", gateway_pid),
                ("encrypt", gateway + "/enc/x", gateway_pid),
            ],
        ),
        (
            f"GET JSON, {tokens} tokens",
            "GET",
            None,
            [
                ("direct", upstream + "/enc/store/doc", upstream_pid),
                ("plain", gateway + "/plain/store/doc", gateway_pid),
                ("decrypt", gateway + "/enc/store/doc", gateway_pid),
            ],
        ),
    ]
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s on loopback; "
        f"{os.cpu_count()} CPU cores shared by wrk, upstream and gateway: read the ratios."
    )
    print(f"1-minute load average before the runs: {os.getloadavg()[0]:.2f}")
    print(f"request body {len(body)} B ({len(DOC['items']) + 1} fields sealed per request);")
    print(f"sealed answer {len(sealed)} B ({tokens} tokens opened per request)")
    header = f"{'case':22} {'target':8} {'req/s':>9} {'p50':>9} {'p99':>9} {'CPU/req':>9}"
    print("\n" + header + "\n" + "-" * len(header))
    for label, method, data, targets in cases:
        results: dict[str, Result] = {}
        for name, url, pid in targets:
            results[name] = r = wrk(ps, tmp, url, lua(method, cookie, data), args, pid)
            print(
                f"{label:22} {name:8} {r.rps:9.0f} {fmt_ms(r.p50_ms):>9} {fmt_ms(r.p99_ms):>9}"
                f" {r.cpu_us:7.0f}us" + (f"  ! {r.errors}" if r.errors else "")
            )
        names = [n for n, _, _ in targets]
        crypto, plain, direct = results[names[2]], results["plain"], results["direct"]
        print(
            f"{'':22} {names[2]}/plain {100 * crypto.rps / plain.rps:.0f}%,"
            f" {names[2]}/direct {100 * crypto.rps / direct.rps:.0f}%,"
            f" plain/direct {100 * plain.rps / direct.rps:.0f}%;"
            f" gateway CPU/req +{crypto.cpu_us - plain.cpu_us:.0f}us for the crypto"
        )
    print(
        "CPU/req: user+system CPU of the target's process per request (the gateway's, or the"
        " upstream's for direct)."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    wrk_arguments(parser)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    if wrk_missing():
        return 1
    return harness(run, args, "portcullis-bench-enc-")


if __name__ == "__main__":
    sys.exit(main())
