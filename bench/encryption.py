"""Encryption benchmark: what each encrypting rule costs over the same transfer unencrypted,
through the real gateway process against a real upstream on loopback, in one run.

    python bench/encryption.py [--duration 5] [--connections 32] [--threads 2] [--rounds 3]
                               [--cases upload,download,html,json] [--compare ROOT]
                               [--profile SECONDS --profile-target "upload encrypt"]

Cases (each a few targets; every target of every case runs once per round, rounds alternate,
the median is printed):

- `upload`: POST of 1 MiB, the bare aiohttp proxy (bench/minimal_proxy.py), the gateway's plain
  rule and its `request: {body: true}` rule (the upstream stores nothing, answers 204);
- `download`: GET of 1 MiB, bare proxy and plain rule serve the plaintext, the `response: body`
  rule decrypts an envelope sealed through the gateway for the user;
- `html`: a 50 KiB HTML page with 100 field values: on the plain rule with the values in clear,
  the same page on a `response: tokens` rule (nothing to open), and the page holding 100 tokens
  on that rule (the client receives the same bytes as the plain row);
- `json`: a small JSON body sealed (`json_fields`) and a JSON answer with 3 tokens opened.

Starts, each in its own process: an aiohttp+uvloop upstream, the bare proxy, and the gateway
(workers: 1, SQLite store, a KEK file, one user added with the CLI; all rules `authenticated`).
wrk drives every target with the same session cookie. --compare ROOT starts a second gateway
from another source tree on the same store and measures it in the same alternation (a
before/after pair under the same load). Ratios are what to read: wrk, the upstream and the
gateway share the cores. Every process it started is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import statistics
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _harness import (
    Processes,
    Result,
    add_user,
    fmt_ms,
    free_port,
    harness,
    launch_gateway,
    login_cookie,
    profile_gateway,
    run_app,
    run_wrk,
    start_minimal,
    start_upstream,
    write_gateway_config,
    wrk_arguments,
    wrk_missing,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.crypto.keyring import generate_kek  # noqa: E402

MIB = 1 << 20
PAGE_SIZE = 50 * 1024
PAGE_TOKENS = 100
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
  - name: blob
    match: {paths: ["/blob/**"]}
    access: authenticated
    encrypt: {request: {body: true}, response: body}
  - name: plain
    match: {paths: ["/plain/**"]}
    access: authenticated
"""
CASES = ("upload", "download", "html", "json")
# (case, the target whose ratio to the other is the figure, the reference, the aim)
AIMS = (
    ("upload", "encrypt", "plain", 0.85),
    ("upload", "plain", "bare", 1.0),
    ("download", "decrypt", "plain", 0.85),
    ("download", "plain", "bare", 1.0),
    ("html", "100 tokens", "plain", 0.60),
    ("html", "token rule", "plain", 0.90),
)

# ----------------------------------------------------------------------------- upstream app


def serve_upstream(port: int) -> None:
    """POST .../store/NAME keeps the body (and its type), GET .../store/NAME serves it back;
    POST .../up reads the body as it streams and drops it; other POSTs answer small JSON."""
    from aiohttp import web

    stored: dict[str, tuple[str, bytes]] = {}
    ok = b'{"ok":true}'

    async def handle(request: web.Request) -> web.StreamResponse:
        _, sep, name = request.path.partition("/store/")
        if request.method == "POST":
            if sep:
                ctype = request.headers.get("Content-Type", "application/octet-stream")
                stored[name] = (ctype, await request.read())
                return web.Response(status=204)
            if request.path.endswith("/up"):
                async for _ in request.content.iter_any():
                    pass
                return web.Response(status=204)
            await request.read()
            return web.Response(body=ok, content_type="application/json")
        if sep and name in stored:
            ctype, body = stored[name]
            return web.Response(body=body, headers={"Content-Type": ctype})
        return web.Response(body=ok, content_type="application/json")

    app = web.Application(client_max_size=64 * MIB)
    app.router.add_route("*", "/{tail:.*}", handle)
    run_app(app, port, backlog=1024)


# ----------------------------------------------------------------------------- requests


def fetch(
    url: str, cookie: str = "", body: bytes | None = None, ctype: str = "application/json"
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Cookie": cookie} if cookie else {})
    if body is not None:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read()


def lua(method: str, cookie: str, body: bytes | None, ctype: str = "application/json") -> str:
    lines = [f'wrk.method = "{method}"']
    if cookie:
        lines.append(f'wrk.headers["Cookie"] = {json.dumps(cookie)}')
    if body is not None:
        lines.append(f'wrk.headers["Content-Type"] = "{ctype}"')
        lines.append(f"wrk.body = {json.dumps(body.decode())}")
    return "\n".join(lines) + "\n"


def lua_upload(cookie: str, size: int) -> str:
    """A POST of `size` bytes, built in Lua (a 1 MiB literal would be a 1 MiB script)."""
    return (
        'wrk.method = "POST"\n'
        + (f'wrk.headers["Cookie"] = {json.dumps(cookie)}\n' if cookie else "")
        + 'wrk.headers["Content-Type"] = "application/octet-stream"\n'
        + f'wrk.body = string.rep("portcullis bench body. ", {size // 23 + 1}):sub(1, {size})\n'
    )


def html_pages(tokens: list[str], values: list[str]) -> tuple[bytes, bytes]:
    """(page with tokens, the same page with the values in clear), ~PAGE_SIZE: what the client
    receives from the token rule is the second page, byte for byte. The shape of
    bench/crypto.py's page (the one the performance issue measured): paragraphs of text and
    one `<td>` cell per value, 6 tags per 512 bytes, well-formed. The HTML context's
    cost grows with the number of tags (bench/crypto.py also prints a tag-dense page)."""
    words = "Lorem ipsum dolor sit amet, consectetur adipiscing. " * 20
    cell = '<td class="n">{}</td>\n'
    room = PAGE_SIZE // len(tokens) - len(cell) - len(tokens[0])
    text = words[: max(0, (room - 9) // 2)].rsplit(" ", 1)[0]
    filler = f"<p>{text}</p>\n" * 2
    sealed = [filler + cell.format(token) for token in tokens]
    clear = [filler + cell.format(html.escape(value)) for value in values]
    head = "<!doctype html>\n<html><head><title>notes</title></head><body>\n"
    tail = "</body></html>\n"
    return (head + "".join(sealed) + tail).encode(), (head + "".join(clear) + tail).encode()


# ----------------------------------------------------------------------------- targets


@dataclass
class Target:
    case: str
    name: str
    url: str
    pid: int
    script: str


def start_gateway(
    ps: Processes, tmp: Path, name: str, root: Path, upstream: str, store: Path
) -> tuple[str, int]:
    home = tmp / name
    home.mkdir()
    port = free_port()
    (home / "kek1").write_text((tmp / "kek1").read_text())
    extra = (
        "passwords:\n  argon2: {time_cost: 1, memory_cost: 1024, parallelism: 1}\n"
        "keys: {active: k1, kek: {k1: 'file:kek1'}}\n"
    )
    config = write_gateway_config(
        home, port, upstream, access="authenticated", extra=extra, store=f"sqlite:///{store}"
    )
    (home / "policies" / "bench.yaml").write_text(POLICY)
    if not store.exists():
        add_user(config, root)
    return launch_gateway(ps, name, config, port, home / "gateway.log", root)


def seed(gateway: str, upstream: str, cookie: str) -> dict[str, bytes]:
    """Store what the GET cases serve, sealing through the gateway; check every route works."""
    body = json.dumps(DOC, separators=(",", ":")).encode()
    blob = os.urandom(MIB)
    checks = [
        fetch(gateway + "/enc/store/doc", cookie, body)[0],
        fetch(upstream + "/x/store/plaindoc", "", body)[0],
        fetch(gateway + "/blob/store/big", cookie, blob, "application/octet-stream")[0],
        fetch(upstream + "/x/store/bigplain", "", blob, "application/octet-stream")[0],
    ]
    values = [f"note {i}: call <Ms. O'Neil> & co" for i in range(PAGE_TOKENS)]
    items = {"items": [{"text": v} for v in values]}
    checks.append(fetch(gateway + "/enc/store/values", cookie, json.dumps(items).encode())[0])
    _, raw = fetch(upstream + "/x/store/values")
    tokens = [item["text"] for item in json.loads(raw)["items"]]
    sealed_page, clear_page = html_pages(tokens, values)
    ctype = "text/html; charset=utf-8"
    checks.append(fetch(upstream + "/x/store/page", "", sealed_page, ctype)[0])
    checks.append(fetch(upstream + "/x/store/pageplain", "", clear_page, ctype)[0])
    if any(status not in (200, 204) for status in checks):
        raise RuntimeError(f"seeding failed {checks}; see the gateway log")
    _, stored = fetch(upstream + "/x/store/big")
    if blob[:64] in stored or fetch(gateway + "/blob/store/big", cookie)[1] != blob:
        raise RuntimeError("the body rule does not round-trip")
    if fetch(gateway + "/enc/store/page", cookie)[1] != clear_page:
        raise RuntimeError("the token rule does not open the page's tokens")
    if json.loads(fetch(gateway + "/enc/store/doc", cookie)[1]) != DOC:
        raise RuntimeError("the JSON rule does not round-trip")
    return {"json": body, "page": sealed_page, "pageplain": clear_page}


def targets_for(
    case: str, label: str, gw: str, pid: int, cookie: str, seeded: dict[str, bytes]
) -> list[Target]:
    """The gateway's targets of one case (`label` prefixes their names with --compare)."""
    p = f"{label} " if label else ""
    get = lua("GET", cookie, None)
    if case == "upload":
        up = lua_upload(cookie, MIB)
        return [
            Target(case, p + "plain", gw + "/plain/up", pid, up),
            Target(case, p + "encrypt", gw + "/blob/up", pid, up),
        ]
    if case == "download":
        return [
            Target(case, p + "plain", gw + "/plain/store/bigplain", pid, get),
            Target(case, p + "decrypt", gw + "/blob/store/big", pid, get),
        ]
    if case == "html":
        return [
            Target(case, p + "plain", gw + "/plain/store/pageplain", pid, get),
            Target(case, p + "token rule", gw + "/enc/store/pageplain", pid, get),
            Target(case, p + "100 tokens", gw + "/enc/store/page", pid, get),
        ]
    post = lua("POST", cookie, seeded["json"])
    return [
        Target(case, p + "POST plain", gw + "/plain/x", pid, post),
        Target(case, p + "POST seal", gw + "/enc/x", pid, post),
        Target(case, p + "GET plain", gw + "/plain/store/plaindoc", pid, get),
        Target(case, p + "GET 3 tokens", gw + "/enc/store/doc", pid, get),
    ]


def bare_targets(case: str, bare: str, pid: int) -> list[Target]:
    if case == "upload":
        return [Target(case, "bare", bare + "/up", pid, lua_upload("", MIB))]
    if case == "download":
        return [Target(case, "bare", bare + "/x/store/bigplain", pid, lua("GET", "", None))]
    if case == "html":
        return [Target(case, "bare", bare + "/x/store/pageplain", pid, lua("GET", "", None))]
    return []


# ----------------------------------------------------------------------------- main


def run(ps: Processes, tmp: Path, args: argparse.Namespace) -> int:
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if unknown := set(cases) - set(CASES):
        raise SystemExit(f"unknown cases {sorted(unknown)}; known: {', '.join(CASES)}")
    upstream, _ = start_upstream(ps, tmp, __file__, health="/health")
    bare, bare_pid = start_minimal(ps, tmp, upstream, health="/health")
    (tmp / "kek1").write_text(generate_kek() + "\n")
    store = tmp / "gw.db"
    gateways = [("", ROOT)]
    if args.compare:
        gateways.append(("compare", args.compare.resolve()))
    targets: list[Target] = []
    for case in cases:
        targets += bare_targets(case, bare, bare_pid)
    for label, root in gateways:
        base, pid = start_gateway(ps, tmp, label or "gateway", root, upstream, store)
        cookie = asyncio.run(login_cookie(base))
        seeded = seed(base, upstream, cookie)
        for case in cases:
            targets += targets_for(case, label, base, pid, cookie, seeded)
    targets.sort(key=lambda t: cases.index(t.case))

    load = os.getloadavg()
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} rounds"
        f" (alternating), median shown; {os.cpu_count()} CPU cores shared by wrk, the upstream,"
        f" the bare proxy and the gateway: read the ratios. Load average before:"
        f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    if args.compare:
        print(f"gateway = {ROOT}; compare = {args.compare.resolve()}")
    results: dict[tuple[str, str], list[Result]] = {(t.case, t.name): [] for t in targets}
    for rnd in range(args.rounds):
        for t in targets:
            path = tmp / "wrk.lua"
            path.write_text(t.script)
            r = run_wrk(ps, tmp, t.url, args, t.pid, extra=["-s", str(path)])
            results[t.case, t.name].append(r)
            print(
                f"  .. round {rnd + 1} {t.case:8} {t.name:22} {r.rps:8.0f} req/s"
                f" {r.cpu_us:7.0f}us CPU/req" + (f"  ! {r.errors}" if r.errors else ""),
                file=sys.stderr,
                flush=True,
            )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report(targets, results, gateways)
    if args.profile:
        chosen = [t for t in targets if f"{t.case} {t.name}" == args.profile_target]
        if not chosen:
            raise SystemExit(f"--profile-target {args.profile_target!r}: no such target")
        t = chosen[0]
        path = tmp / "wrk-profile.lua"
        path.write_text(t.script)
        profile_gateway(ps, tmp, t.pid, t.url, args, extra=["-s", str(path)])
    return 0


def report(
    targets: list[Target],
    results: dict[tuple[str, str], list[Result]],
    gateways: list[tuple[str, Path]],
) -> None:
    def med(case: str, name: str, attr: str = "rps") -> float:
        return statistics.median(getattr(r, attr) for r in results[case, name])

    header = f"{'case':9} {'target':22} {'req/s':>8} {'p50':>9} {'p99':>9} {'CPU/req':>9}"
    header += "  runs (req/s)"
    print("\n" + header + "\n" + "-" * len(header))
    for t in targets:
        runs = results[t.case, t.name]
        print(
            f"{t.case:9} {t.name:22} {med(t.case, t.name):8.0f}"
            f" {fmt_ms(med(t.case, t.name, 'p50_ms')):>9}"
            f" {fmt_ms(med(t.case, t.name, 'p99_ms')):>9}"
            f" {med(t.case, t.name, 'cpu_us'):7.0f}us  " + " ".join(f"{r.rps:.0f}" for r in runs)
        )
        for error in sorted({r.errors for r in runs if r.errors}):
            print(f"  ! {t.case} {t.name}: {error}")
    print("CPU/req: user+system CPU of the target's process per request (gateway or bare proxy).")
    print("\nratios (median of the per-round ratios, each from one round's neighbouring runs):")
    for label, _ in gateways:
        p = f"{label} " if label else ""
        for case, name, ref, aim in AIMS:
            a, b = (case, p + name), (case, ref if ref == "bare" else p + ref)
            if a not in results or b not in results:
                continue
            ratios = [x.rps / y.rps for x, y in zip(results[a], results[b], strict=True)]
            ratio = statistics.median(ratios)
            verdict = "meets" if ratio >= aim else "BELOW"
            spread = " ".join(f"{100 * r:.0f}" for r in ratios)
            print(
                f"  {case:9} {p + name:>18} / {b[1]:<14} {100 * ratio:5.0f}%"
                f"  ({verdict} the {100 * aim:.0f}% aim; rounds: {spread})"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    wrk_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3, help="runs per target, alternating")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    parser.add_argument("--compare", type=Path, help="a second source tree to measure alongside")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="SECONDS", help="py-spy one target afterwards"
    )
    parser.add_argument(
        "--profile-target", default="upload encrypt", help='"CASE TARGET", e.g. "html 100 tokens"'
    )
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
