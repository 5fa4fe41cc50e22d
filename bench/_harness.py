"""The harness every bench script shares: child processes stopped by pid whatever happens,
free loopback ports, the processes a bench measures (an upstream, the gateway, redis-server,
nginx, the bare aiohttp proxy) started and waited for, accounts and logins, wrk runs parsed into
figures with the target's CPU time per request, aiohttp load generators where wrk cannot do the
job (logins, paced GETs), the Argon2id ceiling, and a py-spy profile of a gateway under load.

Nothing here measures by itself; the scripts next to it print the figures. Every process
started through `Processes` is stopped on exit, Ctrl-C or error (`harness`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
WRK = shutil.which("wrk") or "/usr/bin/wrk"
NGINX = "/usr/sbin/nginx"  # the Debian package's binary
USER = "bench"
PASSWORD = "bench-password-0123456789"  # >= 12 chars (passwords.min_length)
# gateway/config Argon2Params defaults: what a login costs unless the operator changes it
TIME_COST, MEMORY_COST, PARALLELISM = 2, 19456, 1


# ----------------------------------------------------------------------------- processes


def run_app(app: object, port: int, **options: object) -> None:
    """Serve an upstream app on loopback with uvloop, no access log (in its own process)."""
    import uvloop
    from aiohttp import web

    web.run_app(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
        **options,  # type: ignore[arg-type]
    )


class Processes:
    """Every child this run started, stopped by pid (each leads its own process group)."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], log: Path, **kw: object) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only us; we stop the children
                **kw,  # type: ignore[arg-type]
            )
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for _, proc in reversed(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # SIGKILL the child's own group (pgid == its pid): catches nginx workers too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self.procs.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}\n{tail(log)}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.1)
    raise RuntimeError(f"{url}: not up after {timeout:.0f}s\n{tail(log)}")


def probe(url: str) -> tuple[int, int]:
    """(status, body length) of one GET."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, len(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, len(exc.read())


# ----------------------------------------------------------------------------- targets


def start_upstream(
    ps: Processes,
    tmp: Path,
    script: str = str(Path(__file__).with_name("proxy.py")),
    *args: str,
    health: str = "/small",
) -> tuple[str, int]:
    """`script --serve-upstream PORT *args` (this file's upstream by default); (base, pid)."""
    port = free_port()
    log = tmp / "upstream.log"
    argv = [sys.executable, script, "--serve-upstream", str(port), *args]
    proc = ps.start("upstream", argv, log)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + health, proc, log)
    return base, proc.pid


def write_gateway_config(
    tmp: Path,
    port: int,
    upstream: str,
    *,
    access: str = "public",
    extra: str = "",
    store: str | None = None,
    workers: int = 1,
    metrics: str | None = None,
) -> Path:
    """A temp gateway.yaml whose one rule gives every path `access`; `extra` is appended.

    `store` is the store URL (default: a SQLite file in `tmp`); `metrics` the metrics listener
    (`127.0.0.1:PORT`; default none: the counters still count, nothing serves them)."""
    (tmp / "policies").mkdir(exist_ok=True)
    (tmp / "policies" / "bench.yaml").write_text(
        f'rules:\n  - name: bench\n    match: {{paths: ["/**"]}}\n    access: {access}\n'
    )
    path = tmp / "gateway.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{port}\n"
        f"workers: {workers}\n"
        f"upstream: {{url: {upstream}}}\n"
        f'store: {{url: "{store or f"sqlite:///{tmp}/gw.db"}"}}\n'
        f"metrics: {{listen: {json.dumps(metrics)}}}\n"
        "policies: [policies/*.yaml]\n" + extra
    )
    return path


def gateway_env(root: Path = ROOT) -> dict[str, str]:
    """This environment with the source tree `root` first on PYTHONPATH."""
    return dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def launch_gateway(
    ps: Processes, name: str, config: Path, port: int, log: Path, root: Path = ROOT
) -> tuple[str, int]:
    """Run the gateway of the source tree `root` on `config`; (base url, pid) once healthy."""
    env = gateway_env(root)
    argv = [sys.executable, "-m", "gateway.cli", "-c", str(config), "run"]
    proc = ps.start(name, argv, log, cwd=str(root), env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/.gateway/healthz", proc, log)
    except RuntimeError:
        if proc.returncode != 2:  # 2 = key material missing: retry with a local dev KEK
            raise
        proc = ps.start(name, [*argv, "--dev"], log, cwd=str(root), env=env)
        wait_http(base + "/.gateway/healthz", proc, log)
    return base, proc.pid


def start_redis(ps: Processes, tmp: Path) -> str:
    """A throwaway redis-server (no persistence) on a free port; its URL (db 0)."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server not found")
    port = free_port()
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    ps.start("redis", argv, tmp / "redis.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("redis-server did not come up")


def start_minimal(
    ps: Processes, tmp: Path, upstream: str, health: str = "/small", name: str = "minimal"
) -> tuple[str, int]:
    """bench/minimal_proxy.py (the bare aiohttp proxy) in front of `upstream`; (base, pid)."""
    port = free_port()
    log = tmp / f"{name}.log"
    script = str(Path(__file__).with_name("minimal_proxy.py"))
    argv = [sys.executable, script, "--port", str(port), "--upstream", upstream]
    proc = ps.start(name, argv, log)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + health, proc, log)
    return base, proc.pid


# proxy_pass with an upstream keepalive pool, one worker, no access log; bodies stream both
# ways (no request buffering, no temp files) as they do through the aiohttp proxies.
NGINX_CONF = """\
daemon off;
pid {tmp}/nginx.pid;
worker_processes 1;
error_log {tmp}/nginx-error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    upstream u {{ server 127.0.0.1:{uport}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://u;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""


def start_nginx(
    ps: Processes, tmp: Path, upstream: str, health: str = "/small"
) -> tuple[str, int] | None:
    """nginx (the Debian package's) in front of `upstream`; (base, pid), None without nginx.
    `tmp` must be readable by nginx's worker user (a root master runs it as nobody)."""
    if not os.path.exists(NGINX):
        return None
    port = free_port()
    uport = upstream.rpartition(":")[2]
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, uport=uport))
    log = tmp / "nginx.log"
    argv = [NGINX, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(conf)]
    proc = ps.start("nginx", argv, log)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + health, proc, log)
    return base, proc.pid


# ----------------------------------------------------------------------------- accounts


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


def add_users(config: Path, names: Sequence[str], password: str = PASSWORD) -> None:
    """Add many users at once with this checkout's account code, as `gateway users add` does
    (config, store, `make_auth`, `Users.add`), in this process: one Python start-up and one
    store connection instead of one per user. Hashes with the config's Argon2 parameters."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from gateway.auth.service import make_auth
    from gateway.clock import SystemClock
    from gateway.config import load_config
    from gateway.store import open_store

    async def main() -> None:
        cfg = load_config(config)
        store = await open_store(cfg.store.url, base_dir=cfg.base_dir)
        try:
            users = make_auth(cfg, store, SystemClock()).users
            await asyncio.gather(*(users.add(name, password) for name in names))
        finally:
            await store.close()

    asyncio.run(main())


def cookie_header(resp: aiohttp.ClientResponse, previous: str = "") -> str:
    """The Cookie header a browser would send next: `previous` updated by resp's Set-Cookie."""
    jar = dict(pair.split("=", 1) for pair in previous.split("; ") if "=" in pair)
    for name, morsel in resp.cookies.items():
        if morsel.value:
            jar[name] = morsel.value
        else:
            jar.pop(name, None)
    return "; ".join(f"{k}={v}" for k, v in jar.items())


async def login_cookie(base: str, user: str = USER, password: str = PASSWORD) -> str:
    """The Cookie header value of one fresh JSON login."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        body = {"username": user, "password": password}
        async with session.post(base + "/.gateway/login", json=body) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise RuntimeError(f"login: HTTP {resp.status}: {text[:300]}")
            cookie = cookie_header(resp)
    if not cookie:
        raise RuntimeError("login: no session cookie set")
    return cookie


# ----------------------------------------------------------------------------- wrk


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int = 0
    errors: str = ""
    cpu_us: float = 0.0  # CPU time of the target's processes per request


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"unparsed latency {text!r}")
    return float(m[1]) * _UNITS_MS[m[2]]


def parse_wrk(out: str) -> Result:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and p50 and p99):
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    errors = []
    if m := re.search(r"Socket errors: (.*)", out):
        errors.append("socket errors: " + m[1].strip())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors.append(f"non-2xx: {m[1]}")
    total = re.search(r"^\s*(\d+) requests in", out, re.M)
    count = int(total[1]) if total else 0
    return Result(float(rps[1]), to_ms(p50[1]), to_ms(p99[1]), count, "; ".join(errors))


def cpu_seconds(pgid: int | Collection[int]) -> float:
    """utime+stime of every live process in the group `pgid`, or in any of several groups
    (nginx: master and worker; a gateway: supervisor and workers)."""
    groups = {pgid} if isinstance(pgid, int) else set(pgid)
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[2]) in groups:  # fields[0] is the state; pgrp, then utime/stime at 11, 12
            total += int(fields[11]) + int(fields[12])
    return total / tick


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat: what every
    process used, ours and anyone else's, and what the hypervisor took away."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def run_wrk(
    ps: Processes,
    tmp: Path,
    url: str,
    args: argparse.Namespace,
    pgid: int | None = None,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """One wrk run on `url`; CPU per request of the process group `pgid`. `env` is added to
    wrk's environment (a Lua script's settings: bench/post.lua)."""
    argv = [WRK, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    argv += extra or []  # e.g. ["-H", "Cookie: ..."] (bench/auth_path.py)
    log = tmp / "wrk.out"
    cpu_before = cpu_seconds(pgid) if pgid else 0.0
    proc = ps.start("wrk", [*argv, url], log, env=dict(os.environ, **(env or {})))
    proc.wait(timeout=args.duration + 60)
    out = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk {url} exited {proc.returncode}:\n{out}")
    result = parse_wrk(out)
    if pgid and result.requests:
        result.cpu_us = (cpu_seconds(pgid) - cpu_before) / result.requests * 1e6
    return result


# ----------------------------------------------------------------------------- aiohttp load


class LoginLoad:
    """`concurrency` clients POSTing JSON logins back to back until stopped. Client i signs
    in as users[i], users[i + concurrency], ... in turn, so with at least `concurrency` names
    no account ever has two logins in flight; with one name every client shares it."""

    def __init__(
        self,
        base: str,
        concurrency: int,
        users: Sequence[str] = (USER,),
        password: str = PASSWORD,
    ) -> None:
        self.url = base + "/.gateway/login"
        self.concurrency = concurrency
        self.users = list(users)
        self.password = password
        self.ok = 0
        self.failed: dict[str, int] = {}
        self.stop = asyncio.Event()

    async def run(self, duration: float) -> float:
        """Logins/s over `duration` seconds (only 200s counted)."""
        connector = aiohttp.TCPConnector(limit=0)
        jar = aiohttp.DummyCookieJar()  # every login starts without a session cookie
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
            start = time.perf_counter()
            tasks = [asyncio.create_task(self._client(session, i)) for i in range(self.concurrency)]
            await asyncio.sleep(duration)
            self.stop.set()
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - start
        return self.ok / elapsed

    async def _client(self, session: aiohttp.ClientSession, index: int) -> None:
        mine = self.users[index % len(self.users) :: self.concurrency] or self.users
        turn = 0
        while not self.stop.is_set():
            body = {"username": mine[turn % len(mine)], "password": self.password}
            turn += 1
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


async def timed_gets(
    url: str, cookie: str, clients: int, duration: float, pause: float
) -> tuple[list[float], int]:
    """`clients` paced clients (one GET, then `pause` seconds) for `duration` seconds:
    (latencies in ms of the 200s, number of non-200s/errors)."""
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
    """The q-th percentile (1..99) of `values`; NaN for none."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def argon2_baseline(threads: int, duration: float) -> tuple[float, int]:
    """(verifies/s, count) of `threads` threads verifying in a loop for `duration` seconds
    with the gateway's default Argon2id parameters: the ceiling for logins/s on that many
    cores (a login costs exactly one verify)."""
    from argon2 import PasswordHasher, Type

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


# ----------------------------------------------------------------------------- profile


def profile_gateway(
    ps: Processes,
    tmp: Path,
    pid: int,
    url: str,
    args: argparse.Namespace,
    extra: list[str] | None = None,
) -> None:
    spy = shutil.which("py-spy")
    if spy is None:
        print("\nprofile: py-spy not installed (pip install py-spy); skipped")
        return
    raw = tmp / "gateway.pyspy.txt"
    seconds = args.profile
    load = ps.start(
        "wrk-profile",
        [
            WRK,
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{seconds + 3}s",
            *(extra or []),
            url,
        ],
        tmp / "wrk-profile.out",
    )
    time.sleep(1)
    spy_argv = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250"]
    spy_argv += ["--format", "raw", "--nonblocking", "--output", str(raw)]
    done = subprocess.run(spy_argv, capture_output=True, text=True, timeout=seconds + 30)
    load.wait(timeout=seconds + 30)
    if done.returncode != 0 or not raw.exists():
        print(f"\nprofile: py-spy failed ({done.returncode}): {done.stderr.strip()[-400:]}")
        return
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        self_time[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        print("\nprofile: no samples")
        return
    print(f"\nGateway profile: py-spy, {seconds}s under wrk load on {url}, {total} samples")
    print(f"(raw collapsed stacks: {raw})")
    print("  top self (leaf) frames:")
    for frame, n in self_time.most_common(15):
        print(f"    {100 * n / total:5.1f}%  {frame}")
    print("  top inclusive frames in gateway/:")
    ours = [(f, n) for f, n in inclusive.most_common() if "gateway/" in f]
    for frame, n in ours[:15]:
        print(f"    {100 * n / total:5.1f}%  {frame}")


def _short(frame: str) -> str:
    """`fn (/long/path/site-packages/aiohttp/x.py:12)` -> `fn (aiohttp/x.py:12)`."""
    m = re.match(r"(.*) \((.*)\)$", frame)
    if not m:
        return frame
    path = m[2]
    for marker in ("site-packages/", str(ROOT) + "/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m[1]} ({path})"


# ----------------------------------------------------------------------------- command line and run


def wrk_arguments(parser: argparse.ArgumentParser) -> None:
    """The wrk load options every wrk-driven bench takes."""
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")


def wrk_missing() -> bool:
    """True (and says so on stderr) when wrk cannot be run."""
    if os.access(WRK, os.X_OK):
        return False
    print(f"wrk not found at {WRK}", file=sys.stderr)
    return True


def fmt_ms(ms: float) -> str:
    return f"{ms * 1000:.0f}us" if ms < 1 else f"{ms:.2f}ms"


def harness(
    body: Callable[[Processes, Path, argparse.Namespace], int],
    args: argparse.Namespace,
    prefix: str,
    mode: int = 0o700,
) -> int:
    """Run a benchmark in a temp dir; stop every process it started, whatever happens."""

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    tmp.chmod(mode)
    ps = Processes()
    try:
        return body(ps, tmp, args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        ps.stop_all()
        if args.keep:
            print(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
