"""The one benchmark command: every figure of the performance issue, side by side, in one table.

    python bench/run.py [--quick] [--json FILE] [--only KEY,...] [--duration S] [--rounds N]

Starts every process it measures, each in its own process group on free loopback ports, and
stops them all by pid on exit, error or Ctrl-C: an aiohttp+uvloop upstream (this file,
--serve-upstream), redis-server, nginx (/usr/sbin/nginx, Debian's, proxy_pass with an upstream
keepalive pool, 1 worker, no access log), bench/minimal_proxy.py (the bare aiohttp proxy), the
same proxy with one Redis GET per request, and four gateways (`python -m gateway.cli -c
TMP/.../gateway.yaml run`): `sqlite` (1 worker, SQLite, every rule below), `redis` (1 worker,
Redis store, same rules), `2 workers` (SQLite) and `logins` (SQLite, many users). Every
gateway runs with the default Argon2id parameters and lockout limits, its metrics listener on,
and its access log written to its log file, as an operator would run it.

Rows run in alternating rounds (each round runs every row once, in order, so the machine's load
is shared alike); the median of the rounds is printed and written as JSON (--json, default
$TMPDIR/portcullis-bench-results.json). wrk drives the HTTP rows (bench/post.lua for bodies);
logins and paced GETs come from an aiohttp client in this process; the Argon2id ceiling and the
policy decision are measured in this process. CPU/req is the user+system CPU of the measured
server's own processes (the gateway's, nginx's, ...; never wrk's or the upstream's, except on
the direct row) per request, read from /proc. wrk, the upstream and the server share the
machine's cores: read the ratios; docs/performance.md says what bounds each figure.

--quick (1 s per row, one round, 40 login users) takes about a minute and is what CI runs
(tests/bench/test_run_quick.py); the full run (3 s per row, 3 rounds, 200 login users) about
five. --only KEY,... times only those rows (globs; the keys are in the JSON). The exit status
is 1 when any row produced no figure.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import fnmatch
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _harness import (
    NGINX,
    PASSWORD,
    ROOT,
    USER,
    WRK,
    LoginLoad,
    Processes,
    add_users,
    argon2_baseline,
    cookie_header,
    cpu_seconds,
    free_port,
    harness,
    launch_gateway,
    login_cookie,
    machine_cpu_seconds,
    pct,
    run_app,
    run_wrk,
    start_minimal,
    start_nginx,
    start_redis,
    start_upstream,
    timed_gets,
    wait_http,
    write_gateway_config,
)

sys.path.insert(0, str(ROOT))

from policy import measure as policy_measure  # noqa: E402

from gateway.crypto.keyring import generate_kek  # noqa: E402

MIB = 1 << 20
SMALL_BODY = b"portcullis-bench " + b"x" * 82 + b"\n"  # 100 bytes
OK_BODY = b'{"ok":true}'
HTML_SIZE = 50 * 1024
TOKENS = 100
JSON_FIELDS = 20
LOGIN_CLIENTS = 20
DISTURBED = 0.25  # cores of other work during a sample worth a mark in the table
GET_CLIENTS, GET_PAUSE = 4, 0.01  # paced authenticated GETs: 4 clients, 10 ms between GETs
MFA_USER = "benchmfa"
POST_LUA = Path(__file__).with_name("post.lua")
DEFAULT_JSON = Path(tempfile.gettempdir()) / "portcullis-bench-results.json"
SETUP, CHALLENGE = "/.gateway/mfa/setup", "/.gateway/mfa"
# The gateways: (name, Redis store?, workers); each has its own home, port and KEK.
GATEWAYS = (("sqlite", False, 1), ("redis", True, 1), ("2 workers", False, 2), ("logins", False, 1))

# One rule per kind of request; the paths' first segment picks the rule, the rest the answer.
GATEWAY_POLICY = """rules:
  - {name: pub, match: {paths: ["/pub/**"]}, access: public}
  - {name: auth, match: {paths: ["/auth/**"]}, access: authenticated}
  - {name: mfa, match: {paths: ["/mfa/**"]}, access: mfa}
  - name: encup
    match: {paths: ["/encup/**"]}
    access: authenticated
    encrypt: {request: {body: true}}
  - name: encdown
    match: {paths: ["/encdown/**"]}
    access: authenticated
    encrypt: {response: body}
  - name: tok
    match: {paths: ["/tok/**"]}
    access: authenticated
    encrypt: {response: tokens}
  - name: json
    match: {paths: ["/json/**"]}
    access: authenticated
    encrypt: {request: {json_fields: ["$.items[*].text"]}}
"""

# ----------------------------------------------------------------------------- servers


def serve_upstream(port: int) -> None:
    """The app behind every proxy (its own process). Any prefix, then: /small (100 B),
    /1m (1 MiB), POST /sink (body read and dropped), POST|GET /store/NAME (kept in memory,
    served back with the content type it came with)."""
    from aiohttp import web

    big = os.urandom(MIB)
    stored: dict[str, tuple[bytes, str]] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.endswith("/small"):
            return web.Response(body=SMALL_BODY, content_type="text/plain")
        if path.endswith("/1m"):
            return web.Response(body=big, content_type="application/octet-stream")
        _, sep, name = path.partition("/store/")
        if request.method == "POST":
            if sep:
                ctype = request.headers.get("Content-Type", "application/octet-stream")
                stored[name] = (await request.read(), ctype)
            else:
                async for _ in request.content.iter_any():
                    pass
            return web.Response(body=OK_BODY, content_type="application/json")
        if sep and name in stored:
            body, ctype = stored[name]
            return web.Response(body=body, headers={"Content-Type": ctype})
        return web.Response(status=404)

    app = web.Application(client_max_size=64 * MIB)
    app.router.add_route("*", "/{tail:.*}", handle)
    run_app(app, port, backlog=1024, shutdown_timeout=1)


def serve_redis_proxy(port: int, upstream: str, redis_url: str) -> None:
    """bench/minimal_proxy.py plus one redis-py GET per request (the store's client library,
    as the gateway uses it): what one store round trip costs a bare proxy."""
    import redis.asyncio as aioredis
    import uvloop
    from aiohttp import web
    from minimal_proxy import build

    client = web.AppKey("redis", aioredis.Redis)
    app = build(upstream.rstrip("/"))

    @web.middleware
    async def one_get(request: web.Request, handler):  # noqa: ANN001, ANN202
        await request.app[client].get("bench:session")
        return await handler(request)

    async def redis_ctx(app: web.Application):  # noqa: ANN202
        app[client] = aioredis.from_url(redis_url)
        await app[client].set("bench:session", b"x" * 200)
        yield
        await app[client].aclose()

    app.middlewares.append(one_get)
    app.cleanup_ctx.append(redis_ctx)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        backlog=1024,
        shutdown_timeout=1,
        loop=uvloop.new_event_loop(),
    )


# ----------------------------------------------------------------------------- rows


@dataclass
class Sample:
    """One row's figures from one round."""

    value: float  # req/s, or the row's unit
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us: float | None = None
    count: int = 0
    errors: str = ""
    redis: dict[str, float] = field(default_factory=dict)  # commands per request
    # cores' worth of CPU used meanwhile by processes that are not this run's, and stolen by
    # the hypervisor: what disturbed this sample on a shared machine
    other_cores: float = 0.0
    steal_cores: float = 0.0


@dataclass
class Row:
    key: str
    label: str
    group: str
    tool: str  # what generated the load
    unit: str = "req/s"
    bare: str | None = None  # key of the bare proxy's row for the same workload
    nginx: str | None = None
    compare: tuple[str, str, str] | None = None  # (row key, "rps" | "p99", short name)
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def median(self, attr: str) -> float | None:
        values = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        return statistics.median(values) if values else None

    def redis_per_request(self) -> dict[str, float]:
        """Median over the rounds of each Redis command's calls per request."""
        names = sorted({name for s in self.samples for name in s.redis})
        return {n: statistics.median(s.redis.get(n, 0.0) for s in self.samples) for n in names}


def ratio(row: Row, other: Row | None, metric: str = "rps") -> float | None:
    """row/other of the medians: the figure (req/s or value) for "rps", p99 for "p99"."""
    if other is None:
        return None
    attr = "p99_ms" if metric == "p99" else "value"
    mine, theirs = row.median(attr), other.median(attr)
    return mine / theirs if mine is not None and theirs else None


@dataclass
class Step:
    """One measurement in a round; fills the samples of one or more rows."""

    keys: tuple[str, ...]
    run: Callable[[int], dict[str, Sample]]
    needs: tuple[str, ...] = ()  # parts of the set-up it cannot run without


class RowFailed(Exception):
    pass


# ----------------------------------------------------------------------------- set-up


class Lab:
    """Every process of the run, the accounts, cookies and seeded data the rows use. A part
    that fails to start is recorded in `broken`; only the rows that need it fail."""

    def __init__(self, ps: Processes, tmp: Path, args: argparse.Namespace) -> None:
        self.ps, self.tmp, self.args = ps, tmp, args
        self.base: dict[str, str] = {}
        self.pid: dict[str, int] = {}
        self.cookie: dict[str, str] = {}
        self.broken: dict[str, str] = {}
        self.redis_url = ""
        self.login_users = [f"login{i:04d}" for i in range(args.users)]
        self.configs: dict[str, tuple[Path, int]] = {}  # gateway name: (config, port)
        self.files: dict[str, Path] = {}  # bodies wrk posts
        self.expect: dict[str, bytes] = {}  # answers the probes check

    def attempt(self, part: str, fn: Callable[..., object], *args: object, after: str = "") -> None:
        """Run one set-up step of `part` (skipped when `after` or `part` itself failed)."""
        if part in self.broken:
            return
        if after in self.broken:
            self.broken[part] = f"{after} did not start"
            return
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - recorded, and its rows fail by name
            self.broken[part] = f"{type(exc).__name__}: {str(exc).strip()[:600]}"
            print(f"  !! {part}: {self.broken[part]}", file=sys.stderr, flush=True)

    def start(self) -> None:
        self.base["upstream"], self.pid["upstream"] = start_upstream(self.ps, self.tmp, __file__)
        self.attempt("redis-server", self._redis)
        self.attempt("nginx", self._nginx)
        self.attempt("bare", self._bare)
        self.attempt("bare_redis", self._bare_redis, after="redis-server")
        for name, on_redis, workers in GATEWAYS:
            after = "redis-server" if on_redis else ""
            self.attempt(name, self._configure, name, on_redis, workers, after=after)
        with concurrent.futures.ThreadPoolExecutor(len(GATEWAYS)) as pool:
            launched = {n: pool.submit(self._launch, n, *c) for n, c in self.configs.items()}
        for name, future in launched.items():
            self.attempt(name, future.result)
        for name in ("sqlite", "redis"):
            self.attempt(name, self._cookie, name)
            self.attempt(f"{name} mfa", self._mfa, name, after=name)
        self.attempt("logins", self._cookie, "logins")
        self.attempt("seed", self._seed, after="sqlite")

    def _redis(self) -> None:
        self.redis_url = start_redis(self.ps, self.tmp)
        self.pid["redis-server"] = next(p.pid for n, p in self.ps.procs if n == "redis")

    def _nginx(self) -> None:
        started = start_nginx(self.ps, self.tmp, self.base["upstream"])
        if started is None:
            raise RuntimeError(f"nginx not found at {NGINX} (Debian package nginx)")
        self.base["nginx"], self.pid["nginx"] = started

    def _bare(self) -> None:
        self.base["bare"], self.pid["bare"] = start_minimal(self.ps, self.tmp, self.upstream)

    def _bare_redis(self) -> None:
        port = free_port()
        log = self.tmp / "bare-redis.log"
        argv = [sys.executable, __file__, "--serve-redis-proxy", str(port)]
        proc = self.ps.start("bare+redis", [*argv, self.upstream, self.redis_url], log)
        self.base["bare_redis"], self.pid["bare_redis"] = f"http://127.0.0.1:{port}", proc.pid
        wait_http(self.base["bare_redis"] + "/small", proc, log)

    @property
    def upstream(self) -> str:
        return self.base["upstream"]

    def _configure(self, name: str, on_redis: bool, workers: int) -> None:
        """The gateway's home: config, policy, KEK file, and its users added."""
        home = self.tmp / name.replace(" ", "-")
        home.mkdir()
        (home / "kek1").write_text(generate_kek() + "\n")
        port = free_port()
        config = write_gateway_config(
            home,
            port,
            self.upstream,
            store=self.redis_url if on_redis else None,
            workers=workers,
            metrics=f"127.0.0.1:{free_port()}",
            extra="keys: {active: k1, kek: {k1: 'file:kek1'}}\n",
        )
        (home / "policies" / "bench.yaml").write_text(GATEWAY_POLICY)
        users = [USER] if workers > 1 else [USER, MFA_USER]
        add_users(config, users + (self.login_users if name == "logins" else []))
        self.configs[name] = (config, port)

    def _launch(self, name: str, config: Path, port: int) -> None:
        log = config.parent / "gateway.log"
        self.base[name], self.pid[name] = launch_gateway(self.ps, name, config, port, log)

    def _cookie(self, gateway: str) -> None:
        self.cookie[gateway] = asyncio.run(login_cookie(self.base[gateway], USER))

    def _mfa(self, gateway: str) -> None:
        self.cookie[f"{gateway} mfa"] = asyncio.run(mfa_cookie(self.base[gateway], MFA_USER))

    def _seed(self) -> None:
        """The bodies wrk posts, a 1 MiB envelope at the upstream for the encrypted download,
        and the two 50 KiB pages: plain, and with 100 tokens sealed for USER."""
        gw, up, cookie = self.base["sqlite"], self.base["upstream"], self.cookie["sqlite"]
        plain = os.urandom(MIB)
        self.files["1m"] = self._file("body-1m.bin", plain)
        doc = {"items": [{"text": f"field value {i:02d}"} for i in range(JSON_FIELDS)], "n": 1}
        self.files["json"] = self._file("body-json.json", json.dumps(doc).encode())
        status, _ = http("POST", gw + "/encup/store/big", cookie, plain)
        _, envelope = http("GET", up + "/x/store/big")
        if status != 200 or len(envelope) <= MIB or envelope[:MIB] == plain:
            raise RuntimeError(f"encrypting upload: HTTP {status}, upstream got no envelope")
        self.expect["1m"] = plain
        values = [f"secret value {i:03d}" for i in range(TOKENS)]
        sealed_doc = json.dumps({"items": [{"text": v} for v in values]}).encode()
        status, _ = http("POST", gw + "/json/store/toks", cookie, sealed_doc, "application/json")
        _, sealed = http("GET", up + "/x/store/toks")
        tokens = [item["text"] for item in json.loads(sealed)["items"]]
        if status != 200 or not all(t.startswith("gwe1.") for t in tokens):
            raise RuntimeError(f"sealing {TOKENS} fields: HTTP {status}, no tokens at the upstream")
        page_plain, page_tokens = html_page(values), html_page(tokens)
        opened = page_tokens
        for token, value in zip(tokens, values, strict=True):
            opened = opened.replace(token.encode(), value.encode())
        self.expect["html_plain"], self.expect["html_tokens"] = page_plain, opened
        for name, page in (("html_plain", page_plain), ("html_tokens", page_tokens)):
            http("POST", f"{up}/x/store/{name}", body=page, ctype="text/html; charset=utf-8")

    def _file(self, name: str, data: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path


def http(
    method: str, url: str, cookie: str = "", body: bytes | None = None, ctype: str = ""
) -> tuple[int, bytes]:
    """(status, body) of one request; redirects are not followed."""
    req = urllib.request.Request(url, data=body, method=method)
    if cookie:
        req.add_header("Cookie", cookie)
    if body is not None:
        req.add_header("Content-Type", ctype or "application/octet-stream")
    req.add_header("Accept", "application/json")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *_: object) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def html_page(cells: list[str]) -> bytes:
    """A 50 KiB HTML page: a table with one cell per value, padded with paragraphs."""
    head = "<!doctype html>\n<html><head><title>bench</title></head><body>\n<table>\n"
    rows = "".join(f"<tr><td>item {i}</td><td>{cell}</td></tr>\n" for i, cell in enumerate(cells))
    tail = "</table>\n</body></html>\n"
    para = "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.</p>\n"
    room = HTML_SIZE - len(head) - len(rows) - len(tail)
    filler = (para * (room // len(para) + 1))[:room]
    filler = filler[: filler.rfind("\n") + 1].ljust(room)  # whole paragraphs, then spaces
    page = (head + rows + filler + tail).encode()
    assert len(page) == HTML_SIZE, len(page)
    return page


async def mfa_cookie(base: str, user: str) -> str:
    """Sign `user` in, enroll TOTP (secret from the setup endpoint, codes from pyotp), sign in
    again and pass the challenge: the Cookie header of a session at MFA level."""
    import pyotp

    accept = {"Accept": "application/json"}
    cookie = await login_cookie(base, user)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        async with s.get(base + SETUP, headers={**accept, "Cookie": cookie}) as r:
            if r.status != 200:
                raise RuntimeError(f"GET {SETUP}: HTTP {r.status}: {(await r.text())[:200]}")
            totp = pyotp.TOTP((await r.json())["secret"])  # the gateway's defaults: 6, 30 s
        confirm = {"code": totp.now()}
        async with s.post(base + SETUP, json=confirm, headers={**accept, "Cookie": cookie}) as r:
            if r.status != 200:
                raise RuntimeError(f"POST {SETUP}: HTTP {r.status}: {(await r.text())[:200]}")
        login = {"username": user, "password": PASSWORD}
        async with s.post(base + "/.gateway/login", json=login) as r:
            answer = await r.json()
            cookie = cookie_header(r)
        # "mfa_required" where every sign-in needs the factor (mfa.enforce: all); else a
        # password session that the mfa rule steps up through the same challenge.
        if answer.get("status") not in ("mfa_required", "authenticated"):
            raise RuntimeError(f"login of an enrolled user answered {answer}")
        # The confirming code's step is spent: the next step's code (within the skew of 1).
        code = {"code": totp.at(time.time() + totp.interval)}
        async with s.post(base + CHALLENGE, json=code, headers={**accept, "Cookie": cookie}) as r:
            if r.status != 200:
                raise RuntimeError(f"POST {CHALLENGE}: HTTP {r.status}: {(await r.text())[:200]}")
            return cookie_header(r, cookie)


# ----------------------------------------------------------------------------- measurements


def redis_stats(url: str, reset: bool = False) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT (INFO commandstats)."""
    import redis

    with redis.Redis.from_url(url) as client:
        if reset:
            client.config_resetstat()
            return {}
        stats = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return {k: v for k, v in calls.items() if k not in ("config", "info", "config|resetstat")}


def wrk_step(
    lab: Lab,
    target: str,
    path: str,
    *,
    cookie: str | None = None,
    post: str | None = None,
    redis: bool = False,
) -> Callable[[int], Sample]:
    """A closure running wrk on target+path (POSTing lab.files[post] if given) for a
    duration; CPU of the target's process group; Redis commands per request if asked."""

    def run(duration: int) -> Sample:
        args = argparse.Namespace(
            threads=lab.args.threads, connections=lab.args.connections, duration=duration
        )
        extra = ["--timeout", "10s"]
        env = None
        if cookie:
            extra += ["-H", f"Cookie: {lab.cookie[cookie]}"]
        if post:
            ctype = "application/json" if post == "json" else "application/octet-stream"
            extra += ["-s", str(POST_LUA)]
            env = {"BENCH_BODY": str(lab.files[post]), "BENCH_TYPE": ctype}
        if redis:
            redis_stats(lab.redis_url, reset=True)
            redis_cpu = cpu_seconds(lab.pid["redis-server"])
        url = lab.base[target] + path
        r = run_wrk(lab.ps, lab.tmp, url, args, lab.pid[target], extra=extra, env=env)
        bad = re.search(r"non-2xx: (\d+)", r.errors)
        if not r.requests or (bad and int(bad[1]) > 0.01 * r.requests):
            raise RowFailed(f"wrk {url}: {r.requests} requests; {r.errors}")
        sample = Sample(r.rps, r.p50_ms, r.p99_ms, r.cpu_us, r.requests, r.errors)
        if redis:
            calls = redis_stats(lab.redis_url)
            sample.redis = {k: v / r.requests for k, v in sorted(calls.items())}
            cpu = cpu_seconds(lab.pid["redis-server"]) - redis_cpu
            sample.redis["redis-server CPU us"] = cpu / r.requests * 1e6
        return sample

    return run


def login_step(lab: Lab) -> Callable[[int], dict[str, Sample]]:
    """20 clients logging in as distinct users, and paced authenticated GETs meanwhile."""

    def run(duration: int) -> dict[str, Sample]:
        base, pid = lab.base["logins"], lab.pid["logins"]
        load = LoginLoad(base, LOGIN_CLIENTS, users=lab.login_users)

        async def both() -> tuple[float, tuple[list[float], int]]:
            gets = timed_gets_on(lab, duration)
            return await asyncio.gather(load.run(duration), gets)

        cpu = cpu_seconds(pid)
        rate, (latencies, bad) = asyncio.run(both())
        cpu = cpu_seconds(pid) - cpu
        if not load.ok or not latencies:
            raise RowFailed(f"{load.ok} logins, {len(latencies)} GETs; failures {load.failed}")
        failed = ", ".join(f"{k}: {v}" for k, v in load.failed.items())
        logins = Sample(rate, cpu_us=cpu / load.ok * 1e6, count=load.ok, errors=failed)
        gets = Sample(
            len(latencies) / duration,
            pct(latencies, 50),
            pct(latencies, 99),
            count=len(latencies),
            errors=f"non-200: {bad}" if bad else "",
        )
        return {"logins": logins, "auth_get_logins": gets}

    return run


async def timed_gets_on(lab: Lab, duration: float) -> tuple[list[float], int]:
    url = lab.base["logins"] + "/auth/small"
    return await timed_gets(url, lab.cookie["logins"], GET_CLIENTS, duration, GET_PAUSE)


def idle_gets_step(lab: Lab) -> Callable[[int], Sample]:
    def run(duration: int) -> Sample:
        pid = lab.pid["logins"]
        cpu = cpu_seconds(pid)
        latencies, bad = asyncio.run(timed_gets_on(lab, duration))
        cpu = cpu_seconds(pid) - cpu
        if not latencies:
            raise RowFailed(f"no authenticated GET answered 200 ({bad} failures)")
        return Sample(
            len(latencies) / duration,
            pct(latencies, 50),
            pct(latencies, 99),
            cpu / len(latencies) * 1e6,
            len(latencies),
            f"non-200: {bad}" if bad else "",
        )

    return run


def argon2_step(threads: int) -> Callable[[int], Sample]:
    def run(duration: int) -> Sample:
        rate, count = argon2_baseline(threads, duration)
        return Sample(rate, count=count)

    return run


def hashing_threads() -> int:
    """How many threads the gateway verifies passwords on, on this machine: its HashingPlan
    where the checkout has one, else its older pool (one thread short of the cores)."""
    try:
        from gateway.auth.users import HashingPlan  # type: ignore[attr-defined]

        return int(HashingPlan.for_this_process().threads)
    except (ImportError, AttributeError):
        return max(1, (os.cpu_count() or 2) - 1)


def policy_step(duration: int) -> Sample:
    """bench/policy.py's match + decide over its request mix, 1,000 rules, in this process."""
    seconds = min(1.0, duration / 2)
    rate, micro, _ = policy_measure(1000, seconds)
    return Sample(micro, count=int(rate * seconds))


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Http:
    """A wrk row: GET (or POST lab.files[post]) target+path, with lab.cookie[cookie]."""

    key: str
    label: str
    target: str  # a key of Lab.base
    path: str
    cookie: str | None = None  # a key of Lab.cookie (also the set-up part that made it)
    post: str | None = None  # a key of Lab.files
    redis: bool = False  # count Redis commands per request
    compare: tuple[str, str, str] | None = None  # (row key, "rps" | "p99", short name)


P99_BARE = ("bare", "p99", "bare")


def gateway_rows(store: str) -> list[Http]:
    name = {"sqlite": "SQLite", "redis": "Redis"}[store]
    redis = store == "redis"
    return [
        Http(f"gw_public_{store}", f"gateway public rule, {name}", store, "/pub/small",
             redis=redis, compare=P99_BARE),
        Http(f"gw_auth_{store}", f"gateway authenticated rule, {name}", store, "/auth/small",
             cookie=store, redis=redis, compare=P99_BARE),
        Http(f"gw_mfa_{store}", f"gateway mfa rule, {name}", store, "/mfa/small",
             cookie=f"{store} mfa", redis=redis, compare=P99_BARE),
    ]  # fmt: skip


def transfer_rows(direction: str) -> list[Http]:
    up = direction == "upload"
    path, post = ("/sink", "1m") if up else ("/1m", None)
    enc = "/encup/sink" if up else "/encdown/store/big"
    return [
        Http(f"nginx_{direction}", f"nginx, 1 MiB {direction}", "nginx", "/x" + path, post=post),
        Http(f"bare_{direction}", f"bare proxy, 1 MiB {direction}", "bare", "/x" + path,
             post=post),
        Http(f"gw_{direction}_plain", f"gateway 1 MiB {direction}, authenticated", "sqlite",
             "/auth" + path, cookie="sqlite", post=post),
        Http(f"gw_{direction}_enc", f"gateway 1 MiB {direction}, whole body encrypted", "sqlite",
             enc, cookie="sqlite", post=post, compare=(f"gw_{direction}_plain", "rps", "plain")),
    ]  # fmt: skip


HTML_PLAIN = ("gw_html_plain", "rps", "plain")
# (group, key of its bare proxy row, key of its nginx row, rows)
HTTP_GROUPS: list[tuple[str, str | None, str | None, list[Http]]] = [
    ("GET ~100 B", "bare", "nginx", [
        Http("direct", "direct (upstream, no proxy)", "upstream", "/small"),
        Http("nginx", "nginx proxy_pass", "nginx", "/small"),
        Http("bare", "bare aiohttp proxy", "bare", "/small"),
        Http("bare_redis", "bare proxy + 1 Redis GET", "bare_redis", "/small", redis=True,
             compare=P99_BARE),
        *gateway_rows("sqlite"),
        *gateway_rows("redis"),
        Http("gw_public_2w", "gateway public rule, SQLite, 2 workers", "2 workers", "/pub/small",
             compare=("gw_public_sqlite", "rps", "1 worker")),
    ]),
    ("POST 1 MiB", "bare_upload", "nginx_upload", transfer_rows("upload")),
    ("GET 1 MiB", "bare_download", "nginx_download", transfer_rows("download")),
    ("GET 50 KiB HTML", "bare_html", None, [
        Http("bare_html", "bare proxy, 50 KiB HTML", "bare", "/x/store/html_plain"),
        Http("gw_html_plain", "gateway 50 KiB HTML, authenticated", "sqlite",
             "/auth/store/html_plain", cookie="sqlite"),
        Http("gw_html_tokrule", "gateway same page on a token rule", "sqlite",
             "/tok/store/html_plain", cookie="sqlite", compare=HTML_PLAIN),
        Http("gw_html_tokens", f"gateway page with {TOKENS} tokens opened", "sqlite",
             "/tok/store/html_tokens", cookie="sqlite", compare=HTML_PLAIN),
    ]),
    (f"POST JSON, {JSON_FIELDS} fields", "bare_json", None, [
        Http("bare_json", "bare proxy, JSON POST", "bare", "/x/sink", post="json"),
        Http("gw_json_plain", "gateway JSON POST, authenticated", "sqlite", "/auth/sink",
             cookie="sqlite", post="json"),
        Http("gw_json_enc", f"gateway JSON POST, {JSON_FIELDS} fields encrypted", "sqlite",
             "/json/sink", cookie="sqlite", post="json",
             compare=("gw_json_plain", "rps", "plain")),
    ]),
]  # fmt: skip


def plan(lab: Lab) -> tuple[list[Row], list[Step]]:
    """Every row in table order, and the steps that measure them (one step per row, but one
    login step fills two rows)."""
    rows: list[Row] = []
    steps: list[Step] = []

    def one(row: Row, run: Callable[[int], Sample], *needs: str) -> None:
        rows.append(row)
        steps.append(Step((row.key,), lambda d: {row.key: run(d)}, needs))

    for group, bare, nginx, specs in HTTP_GROUPS:
        for h in specs:
            tool = "wrk+lua" if h.post else "wrk"
            row = Row(h.key, h.label, group, tool, bare=bare, nginx=nginx, compare=h.compare)
            seeded = h.post or "/store/" in h.path
            needs = [h.target, *([h.cookie] if h.cookie else []), *(["seed"] if seeded else [])]
            run = wrk_step(lab, h.target, h.path, cookie=h.cookie, post=h.post, redis=h.redis)
            one(row, run, *needs)

    group = "logins (Argon2id)"
    cores = os.cpu_count() or 1
    pool = hashing_threads()
    for threads in sorted({pool, cores}):
        label = f"Argon2id alone, {threads} thread{'s' if threads > 1 else ''}"
        label += " (as the gateway)" if threads == pool else ""
        one(Row(f"argon2_{threads}", label, group, "in-proc", "verifies/s"), argon2_step(threads))
    rows.append(
        Row(
            "logins",
            f"logins, {LOGIN_CLIENTS} clients, distinct users",
            group,
            "aiohttp",
            "logins/s",
            compare=(f"argon2_{pool}", "rps", "argon2"),
        )
    )
    one(
        Row("auth_get_idle", "authenticated GET, paced, idle", group, "aiohttp"),
        idle_gets_step(lab),
        "logins",
    )
    rows.append(
        Row(
            "auth_get_logins",
            "authenticated GET, paced, during the logins",
            group,
            "aiohttp",
            compare=("auth_get_idle", "p99", "idle"),
        )
    )
    steps.append(Step(("logins", "auth_get_logins"), login_step(lab), ("logins",)))
    one(
        Row("policy_1000", "policy decision, 1,000 rules", "policy", "in-proc", "us/decision"),
        policy_step,
    )
    return rows, steps


# ----------------------------------------------------------------------------- probes


def expected_body(lab: Lab, h: Http) -> bytes | int:
    """What a row's request must answer: the exact body, or its length."""
    if h.path.endswith("/small"):
        return SMALL_BODY
    if h.path.endswith("/sink"):
        return OK_BODY
    if h.path.endswith("/encdown/store/big"):
        return lab.expect["1m"]
    if "/store/html_" in h.path:
        return lab.expect[h.path.rpartition("/store/")[2]]
    return MIB


def probe(lab: Lab, h: Http) -> None:
    """One request of the row, checked, before anything is timed; and for a rule that
    demands more, proof that less is refused."""
    url = lab.base[h.target] + h.path
    body = lab.files[h.post].read_bytes() if h.post else None
    ctype = "application/json" if h.post == "json" else ""
    method = "POST" if h.post else "GET"
    cookie = lab.cookie[h.cookie] if h.cookie else ""
    status, got = http(method, url, cookie, body, ctype)
    want = expected_body(lab, h)
    if status != 200 or (got != want if isinstance(want, bytes) else len(got) != want):
        raise RowFailed(f"probe {method} {url}: HTTP {status}, {len(got)} bytes: {got[:160]!r}")
    weaker = {"auth": "", "mfa": lab.cookie.get(h.cookie.split()[0], "") if h.cookie else ""}
    rule = h.path.split("/")[1]
    if h.target in ("sqlite", "redis") and rule in weaker:
        status, _ = http(method, url, weaker[rule], body, ctype)
        if status == 200:
            raise RowFailed(f"probe {url}: answered 200 to a session below the rule")


# ----------------------------------------------------------------------------- the run


def own_cpu_seconds(lab: Lab) -> float:
    """CPU this run has used: this process, its reaped children (wrk) and every live process
    group it started (servers, gateway workers)."""
    t = os.times()
    live = {proc.pid for _, proc in lab.ps.procs if proc.poll() is None}
    return t.user + t.system + t.children_user + t.children_system + cpu_seconds(live)


def measure(lab: Lab, rows: dict[str, Row], steps: list[Step]) -> None:
    """Every step once per round, in order, for args.rounds rounds; each sample notes how
    much other work the machine did meanwhile."""
    args = lab.args
    for rnd in range(1, args.rounds + 1):
        for step in steps:
            (busy, steal), own, start = machine_cpu_seconds(), own_cpu_seconds(lab), time.time()
            try:
                samples = step.run(args.duration)
            except Exception as exc:  # noqa: BLE001 - the row fails, the run goes on
                for key in step.keys:
                    rows[key].failures.append(f"round {rnd}: {type(exc).__name__}: {exc}")
                print(f"  !! round {rnd} {step.keys}: {exc}", file=sys.stderr, flush=True)
                continue
            (busy2, steal2), elapsed = machine_cpu_seconds(), time.time() - start
            other = max(0.0, (busy2 - busy) - (own_cpu_seconds(lab) - own)) / elapsed
            for key, sample in samples.items():
                sample.other_cores, sample.steal_cores = other, (steal2 - steal) / elapsed
                rows[key].samples.append(sample)
                print(
                    f"  .. round {rnd}/{args.rounds} {key:18} {fmt_value(sample.value):>10}"
                    f" {rows[key].unit:11} p99 {fmt_ms(sample.p99_ms)}",
                    file=sys.stderr,
                    flush=True,
                )


def prepare(lab: Lab, rows: dict[str, Row], steps: list[Step], only: list[str]) -> list[Step]:
    """The steps to time: those selected by --only whose set-up parts came up and whose
    probes passed; every other selected row records why it has no figure."""
    specs = {h.key: h for _, _, _, hs in HTTP_GROUPS for h in hs}
    chosen = []
    for step in steps:
        if only and not any(fnmatch.fnmatch(k, pat) for k in step.keys for pat in only):
            for key in step.keys:
                del rows[key]
            continue
        broken = [f"{n}: {lab.broken[n]}" for n in step.needs if n in lab.broken]
        problem = f"set-up failed: {'; '.join(broken)}" if broken else ""
        if not problem and step.keys[0] in specs:
            try:
                probe(lab, specs[step.keys[0]])
            except (RowFailed, OSError) as exc:
                problem = str(exc)
        if problem:
            for key in step.keys:
                rows[key].failures.append(problem)
            print(f"  !! {', '.join(step.keys)}: {problem}", file=sys.stderr, flush=True)
            continue
        chosen.append(step)
    return chosen


def fmt_value(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms * 1000:.0f}us" if ms < 1 else f"{ms:.2f}ms" if ms < 100 else f"{ms:.0f}ms"


def fmt_cpu(us: float | None) -> str:
    if us is None:
        return "-"
    return f"{us:,.0f}us" if us < 10_000 else f"{us / 1000:,.1f}ms"


def fmt_ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def compared(row: Row, rows: dict[str, Row]) -> tuple[float | None, str]:
    """The row's own comparison: (ratio, text such as "0.83x plain" or "p99 1.40x idle")."""
    if row.compare is None:
        return None, ""
    key, metric, name = row.compare
    x = ratio(row, rows.get(key), metric)
    if x is None:
        return None, ""
    return x, (f"p99 {x:.2f}x {name}" if metric == "p99" else f"{x:.2f}x {name}")


def as_json(row: Row, rows: dict[str, Row]) -> dict[str, object]:
    x, text = compared(row, rows)
    figure = row.median("value")
    return {
        "key": row.key,
        "label": row.label,
        "group": row.group,
        "tool": row.tool,
        "unit": row.unit,
        "figure": figure,  # req/s, or the value in `unit`; null: the row produced none
        "rps": figure if row.unit == "req/s" else None,
        "p50_ms": row.median("p50_ms"),
        "p99_ms": row.median("p99_ms"),
        "cpu_us": row.median("cpu_us"),
        "vs_bare": ratio(row, rows.get(row.bare or "")),
        "vs_nginx": ratio(row, rows.get(row.nginx or "")),
        "compare": {"row": row.compare[0], "metric": row.compare[1], "ratio": x, "text": text}
        if row.compare
        else None,
        "runs": [s.value for s in row.samples],
        "p99_runs": [s.p99_ms for s in row.samples],
        "other_cores_runs": [round(s.other_cores, 3) for s in row.samples],
        "steal_cores_runs": [round(s.steal_cores, 3) for s in row.samples],
        "requests": [s.count for s in row.samples],
        "redis_cmds_per_req": row.redis_per_request(),
        "errors": sorted({s.errors for s in row.samples if s.errors}),
        "failures": row.failures,
    }


def print_table(rows: dict[str, Row]) -> None:
    header = (
        f"{'row':56} {'tool':7} {'req/s':>10}  {'p50':>8} {'p99':>8} {'CPU/req':>9}"
        f" {'vs bare':>7} {'vs nginx':>8}  compare"
    )
    print("\n" + header + "\n" + "-" * len(header))
    group = None
    for row in rows.values():
        if row.group != group:
            group = row.group
            print(group)
        label = row.label + ("" if row.unit == "req/s" else f" [{row.unit}]")
        figure = row.median("value")
        if figure is None:
            print(f"  {label:54} {row.tool:7} {'FAILED':>10}  (see below)")
            continue
        vs_bare = fmt_ratio(ratio(row, rows.get(row.bare or "")))
        vs_nginx = fmt_ratio(ratio(row, rows.get(row.nginx or "")))
        mark = "*" if any(s.other_cores > DISTURBED for s in row.samples) else " "
        print(
            f"  {label:54} {row.tool:7} {fmt_value(figure):>10}{mark}"
            f" {fmt_ms(row.median('p50_ms')):>8}"
            f" {fmt_ms(row.median('p99_ms')):>8} {fmt_cpu(row.median('cpu_us')):>9}"
            f" {vs_bare:>7} {vs_nginx:>8}  {compared(row, rows)[1]}"
        )


def print_notes(rows: dict[str, Row], args: argparse.Namespace) -> None:
    samples = [(s.other_cores, s.steal_cores, r.key) for r in rows.values() for s in r.samples]
    if samples:
        worst = max(samples)
        print(
            f"other work on the machine while rows ran (not this run's processes): median"
            f" {statistics.median(x[0] for x in samples):.2f} cores, most {worst[0]:.2f}"
            f" ({worst[2]}); stolen by the hypervisor: most"
            f" {max(x[1] for x in samples):.2f} cores. * = a round of that row had more than"
            f" {DISTURBED} cores of other work (its median may still be clean)."
        )
    for row in rows.values():
        cmds = row.redis_per_request()
        if cmds:
            cpu = cmds.pop("redis-server CPU us", None)
            shown = {k: v for k, v in cmds.items() if v >= 0.005}  # not the odd HELLO
            text = " ".join(f"{k}={v:.2f}" for k, v in shown.items()) or "none"
            extra = f" (redis-server CPU {cpu:.0f}us/req)" if cpu is not None else ""
            print(f"redis cmds/req, {row.label}: {text}{extra}")
    for row in rows.values():
        for error in sorted({s.errors for s in row.samples if s.errors}):
            print(f"  ! {row.key}: {error}")
        if row.failures:
            head = "FAILED" if row.median("value") is None else "!"
            print(f"  {head} {row.key}: {'; '.join(row.failures)}")
    print(
        f"\nreq/s: median of {args.rounds} round(s) of {args.duration}s. wrk = wrk"
        f" -t{args.threads} -c{args.connections} --latency (wrk+lua: bench/post.lua POSTs the"
        f" body); aiohttp = this process's client ({LOGIN_CLIENTS} login clients over"
        f" {args.users} users; paced GETs: {GET_CLIENTS} clients, {GET_PAUSE * 1000:.0f} ms"
        " apart); in-proc = measured in this process (argon2-cffi; bench/policy.py's measure)."
        " CPU/req: user+system CPU of the measured server's processes per request (on the logins"
        " row per login, the paced GETs served meanwhile included). vs bare / vs nginx: req/s"
        " over the bare proxy's / nginx's on the same workload. 2 workers: the public rule on"
        " SQLite."
    )


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "loadavg_before": os.getloadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run(ps: Processes, tmp: Path, args: argparse.Namespace) -> int:
    started = time.monotonic()
    info = machine()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{info['nproc']} CPU cores ({info['cpu_model']}); load average before: {load}")
    lab = Lab(ps, tmp, args)
    print("  .. starting upstream, redis, nginx, proxies, gateways", file=sys.stderr, flush=True)
    lab.start()
    row_list, steps = plan(lab)
    rows = {row.key: row for row in row_list}
    steps = prepare(lab, rows, steps, [p for p in (args.only or "").split(",") if p])
    print(f"  .. set up in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    measure(lab, rows, steps)
    print_table(rows)
    print_notes(rows, args)
    info["loadavg_after"] = os.getloadavg()
    info["seconds"] = round(time.monotonic() - started, 1)
    settings = {k: getattr(args, k) for k in ("quick", "duration", "rounds", "users")}
    settings |= {"wrk": f"-t{args.threads} -c{args.connections}", "login_clients": LOGIN_CLIENTS}
    out = {"machine": info, "settings": settings, "rows": [as_json(r, rows) for r in rows.values()]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"figures written to {args.json}; {info['seconds']:.0f}s in all")
    return 1 if any(row.median("value") is None for row in rows.values()) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 s per row, 1 round (~1 min)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON}")
    parser.add_argument("--duration", type=int, help="seconds per row (default 3; quick 1)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; quick 1)")
    parser.add_argument("--users", type=int, help="login users (default 200; quick 40)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--only", help="comma-separated row keys or globs (gw_auth_*,bare)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-redis-proxy", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    if args.serve_redis_proxy:
        port, upstream, redis_url = args.serve_redis_proxy
        serve_redis_proxy(int(port), upstream, redis_url)
        return 0
    args.duration = args.duration or (1 if args.quick else 3)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.users = args.users or (40 if args.quick else 200)
    if args.users < LOGIN_CLIENTS:
        parser.error(f"--users must be at least {LOGIN_CLIENTS} (one account per login client)")
    if not os.access(WRK, os.X_OK):
        print(f"wrk not found at {WRK} (Debian package wrk)", file=sys.stderr)
        return 1
    # nginx, running as root, hands its worker to nobody: the temp dir must be readable.
    return harness(run, args, "portcullis-bench-run-", mode=0o755)


if __name__ == "__main__":
    sys.exit(main())
