"""The harness every bench script shares: child processes stopped by pid whatever happens,
free loopback ports, an upstream or gateway started and waited for, wrk runs parsed into
figures with the target's CPU time per request, and a py-spy profile of a gateway under load.

Nothing here measures by itself; the scripts next to it print the figures. Every process
started through `Processes` is stopped on exit, Ctrl-C or error (`harness`).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRK = shutil.which("wrk") or "/usr/bin/wrk"


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
) -> Path:
    """A temp gateway.yaml whose one rule gives every path `access`; `extra` is appended.

    `store` is the store URL (default: a SQLite file in `tmp`)."""
    (tmp / "policies").mkdir(exist_ok=True)
    (tmp / "policies" / "bench.yaml").write_text(
        f'rules:\n  - name: bench\n    match: {{paths: ["/**"]}}\n    access: {access}\n'
    )
    path = tmp / "gateway.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{port}\n"
        "workers: 1\n"
        f"upstream: {{url: {upstream}}}\n"
        f'store: {{url: "{store or f"sqlite:///{tmp}/gw.db"}"}}\n'
        "metrics: {listen: null}\n"
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


def cpu_seconds(pgid: int) -> float:
    """utime+stime of every live process in the group `pgid` (nginx: master and worker)."""
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
        if int(fields[2]) == pgid:  # fields[0] is the state; pgrp, then utime/stime at 11, 12
            total += int(fields[11]) + int(fields[12])
    return total / tick


def run_wrk(
    ps: Processes,
    tmp: Path,
    url: str,
    args: argparse.Namespace,
    pgid: int | None = None,
    extra: list[str] | None = None,
) -> Result:
    argv = [WRK, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    argv += extra or []  # e.g. ["-H", "Cookie: ..."] (bench/auth_path.py)
    log = tmp / "wrk.out"
    cpu_before = cpu_seconds(pgid) if pgid else 0.0
    proc = ps.start("wrk", [*argv, url], log)
    proc.wait(timeout=args.duration + 60)
    out = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk {url} exited {proc.returncode}:\n{out}")
    result = parse_wrk(out)
    if pgid and result.requests:
        result.cpu_us = (cpu_seconds(pgid) - cpu_before) / result.requests * 1e6
    return result


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
