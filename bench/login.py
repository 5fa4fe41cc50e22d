"""Login benchmark: JSON logins/s through the gateway against Argon2id alone on the cores the
gateway gives it, and the latency of authenticated proxied GETs idle and while logins run, all
in one run, in alternating rounds.

    python bench/login.py [--duration 10] [--rounds 2] [--concurrency 20] [--get-clients 4]

1. Starts an aiohttp+uvloop upstream (bench/proxy.py's) and the gateway (workers: 1, SQLite
   store in a temp dir, one policy: everything `authenticated`, the default lockout settings)
   with --users distinct accounts (default: one per login client, so no account ever has two
   logins in flight: the lockout is not what is measured; tests/auth covers it).
2. Reads from the gateway's log where it hashes ("password hashing": the cores its Argon2
   threads are pinned to, how many threads, their lower priority; gateway/auth/users.py). Then,
   unless --no-pin, this process (the load generator) and the upstream are pinned to the other
   cores: they stand for clients and an app on other machines, and must not take the hashing
   cores from the gateway.
3. Each round: (a) Argon2id alone: argon2-cffi verifying a known password with the configured
   parameters on as many threads as the gateway has, pinned and niced exactly as the gateway's
   (the ceiling for logins/s: a login costs one verify); (b) --concurrency clients POST JSON
   logins back to back; (c) --get-clients paced clients GET /small with a session cookie, idle;
   (d) the same GETs while the logins of (b) run again.

Prints logins/s, Argon2-alone/s and their ratio (aim: at least 90%), and the idle and loaded
p50/p99 of the authenticated GETs and their ratio (aim: p99 at most 1.5x). Every process it
started is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _harness import (
    MEMORY_COST,
    PARALLELISM,
    PASSWORD,
    ROOT,
    TIME_COST,
    USER,
    LoginLoad,
    Processes,
    add_user,
    add_users,
    argon2_baseline,
    free_port,
    harness,
    launch_gateway,
    login_cookie,
    pct,
    start_upstream,
    tail,
    timed_gets,
    write_gateway_config,
)

# Other bench scripts import these from here.
__all__ = [
    "PASSWORD",
    "USER",
    "add_user",
    "gateway_hashing",
    "login_cookie",
    "pinned_argon2",
    "start_gateway",
    "write_config",
]

LOGIN_AIM = 0.90  # logins/s over Argon2-alone/s
P99_AIM = 1.5  # p99 of authenticated GETs during logins over idle

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from gateway.auth.users import HashingPlan  # noqa: E402 - the gateway's own placement code

# ----------------------------------------------------------------------------- gateway


def write_config(tmp: Path, port: int, upstream: str) -> Path:
    argon2 = (
        f"passwords:\n  argon2: {{time_cost: {TIME_COST}, memory_cost: {MEMORY_COST},"
        f" parallelism: {PARALLELISM}}}\n"
    )
    return write_gateway_config(tmp, port, upstream, access="authenticated", extra=argon2)


def start_gateway(ps: Processes, tmp: Path, config: Path, port: int) -> tuple[str, int]:
    return launch_gateway(ps, "gateway", config, port, tmp / "gateway.log")


def gateway_hashing(log: Path, timeout: float = 3.0) -> HashingPlan | None:
    """The plan a gateway logged at start-up ("password hashing": where its Argon2 runs), or
    None from a gateway that does not say (one older than the hashing plan)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"password hashing"' in line:
                e = json.loads(line)
                return HashingPlan(frozenset(e["cores"]), e["threads"], e["nice"])
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def pin(pid: int, cores: set[int]) -> None:
    """Every thread of process `pid` (0: this one) onto `cores`; threads started later by
    them inherit it."""
    tasks = Path(f"/proc/{pid or os.getpid()}/task")
    for tid in (int(t.name) for t in tasks.iterdir()):
        os.sched_setaffinity(tid, cores)


def pinned_argon2(plan: HashingPlan, duration: float) -> tuple[float, int]:
    """(verifies/s, count): `argon2_baseline` on `plan.threads` threads placed as the gateway
    places its own (pinned to `plan.cores`, niced by `plan.nice`). Its pool threads are started
    by a thread already placed, and inherit the placement."""
    out: list[tuple[float, int]] = []

    def run() -> None:
        plan.enter()
        out.append(argon2_baseline(plan.threads, duration))

    worker = threading.Thread(target=run, name="argon2-alone")
    worker.start()
    worker.join()
    if not out:
        raise RuntimeError("the Argon2 baseline failed")
    return out[0]


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of all phases")
    parser.add_argument("--concurrency", type=int, default=20, help="login clients")
    parser.add_argument("--users", type=int, default=0, help="accounts (default: --concurrency)")
    parser.add_argument("--get-clients", type=int, default=4, help="authenticated GET clients")
    parser.add_argument(
        "--get-pause", type=float, default=0.01, help="seconds each GET client waits between GETs"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="leave the load generator and upstream unpinned"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    args = parser.parse_args(argv)
    args.users = args.users or args.concurrency
    return harness(run, args, "portcullis-bench-login-")


def run(ps: Processes, tmp: Path, args: argparse.Namespace) -> int:
    available = os.sched_getaffinity(0)
    print(
        f"{len(available)} CPU cores; Argon2id t={TIME_COST} m={MEMORY_COST} KiB"
        f" p={PARALLELISM}; {args.concurrency} login clients over {args.users} users;"
        f" {args.rounds} x {args.duration:g}s per phase."
    )
    load1 = os.getloadavg()[0]
    print(f"1-minute load average before the runs: {load1:.2f}", end="")
    print(" (other work on this machine skews the figures)" if load1 > 0.5 else "")

    upstream, upstream_pid = start_upstream(ps, tmp)
    port = free_port()
    config = write_config(tmp, port, upstream)
    users = [f"login{i:04d}" for i in range(args.users)]
    print(f"  .. adding {len(users) + 1} users", file=sys.stderr, flush=True)
    add_users(config, [USER, *users])
    # Started before anything here is pinned: the gateway gets every core and decides itself.
    base, _ = start_gateway(ps, tmp, config, port)
    plan = gateway_hashing(tmp / "gateway.log")
    if plan is None:
        # What the gateway did before it had a plan: an unpinned pool, one thread short of
        # the cores, at the process's priority (for before/after runs of this script).
        plan = HashingPlan(frozenset(), max(1, len(available) - 1), 0)
        print("the gateway does not say where it hashes: assuming the old unpinned pool")
    serving = set(available) - plan.cores
    print(
        f"gateway hashes on cores {sorted(plan.cores) or 'any'} with {plan.threads} thread(s) at"
        f" nice +{plan.nice}; serving cores {sorted(serving) or 'all'}",
        end="",
    )
    if serving and plan.cores and not args.no_pin:
        pin(0, serving)
        pin(upstream_pid, serving)
        print(f"; load generator and upstream pinned to {sorted(serving)}")
    else:
        print("; load generator and upstream not pinned")
    try:
        return asyncio.run(measure(base, args, plan, users))
    except Exception:
        print(tail(tmp / "gateway.log"), file=sys.stderr)
        raise


@dataclass
class Totals:
    """Counts and seconds summed over the rounds (a rate is count / seconds)."""

    count: int = 0
    seconds: float = 0.0
    failed: dict[str, int] = field(default_factory=dict)

    def add(self, count: int, seconds: float, failed: dict[str, int] | None = None) -> None:
        self.count += count
        self.seconds += seconds
        for k, v in (failed or {}).items():
            self.failed[k] = self.failed.get(k, 0) + v

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else float("nan")


async def measure(base: str, args: argparse.Namespace, plan: HashingPlan, users: list[str]) -> int:
    n, dur = args.concurrency, args.duration
    cookie = await login_cookie(base, USER)
    url = base + "/small"
    lat, bad = await timed_gets(url, cookie, args.get_clients, 1.0, args.get_pause)  # warm up
    if not lat:
        raise RuntimeError(f"authenticated GET {url}: no 200 ({bad} failures)")

    hashes, logins, busy_logins = Totals(), Totals(), Totals()
    idle: list[float] = []
    busy: list[float] = []
    idle_bad = busy_bad = 0
    for r in range(1, args.rounds + 1):
        step = f"  .. round {r}/{args.rounds}:"
        print(f"{step} Argon2id alone, {plan.threads} thread(s)", file=sys.stderr, flush=True)
        rate, count = await asyncio.to_thread(pinned_argon2, plan, dur)
        hashes.add(count, count / rate if rate else dur)

        print(f"{step} {n} concurrent logins", file=sys.stderr, flush=True)
        load = LoginLoad(base, n, users=users)
        rate = await load.run(dur)
        logins.add(load.ok, load.ok / rate if rate else dur, load.failed)

        print(f"{step} authenticated GETs, idle", file=sys.stderr, flush=True)
        got, bad = await timed_gets(url, cookie, args.get_clients, dur, args.get_pause)
        idle += got
        idle_bad += bad

        print(f"{step} authenticated GETs during {n} logins", file=sys.stderr, flush=True)
        load = LoginLoad(base, n, users=users)
        rate, (got, bad) = await asyncio.gather(
            load.run(dur), timed_gets(url, cookie, args.get_clients, dur, args.get_pause)
        )
        busy_logins.add(load.ok, load.ok / rate if rate else dur, load.failed)
        busy += got
        busy_bad += bad

    report(args, plan, hashes, logins, busy_logins, (idle, idle_bad), (busy, busy_bad))
    return 0


def report(
    args: argparse.Namespace,
    plan: HashingPlan,
    hashes: Totals,
    logins: Totals,
    busy_logins: Totals,
    idle: tuple[list[float], int],
    busy: tuple[list[float], int],
) -> None:
    n = args.concurrency
    ratio = logins.rate / hashes.rate
    print()
    header = f"{'Logins (Argon2id)':40} {'per s':>9} {'count':>7} {'vs Argon2':>10}"
    print(header)
    print("-" * len(header))
    label = f"Argon2id alone, {plan.threads} thread(s)"
    print(f"{label:40} {hashes.rate:9.1f} {hashes.count:7d} {100:9.0f}%")
    label = f"JSON logins, {n} clients, distinct users"
    print(f"{label:40} {logins.rate:9.1f} {logins.count:7d} {100 * ratio:9.0f}%")
    label = "  (the same, while the GETs ran)"
    loaded = busy_logins.rate / hashes.rate
    print(f"{label:40} {busy_logins.rate:9.1f} {busy_logins.count:7d} {100 * loaded:9.0f}%")
    verdict = "meets" if ratio >= LOGIN_AIM else "below"
    print(f"logins / Argon2 alone: {ratio:.2f} ({verdict} the {LOGIN_AIM:.2f} aim)")

    print()
    (idle_ms, idle_bad), (busy_ms, busy_bad) = idle, busy
    header = f"{'Authenticated GET /small':40} {'count':>7} {'p50':>9} {'p99':>9} {'errors':>7}"
    print(header)
    print("-" * len(header))
    i50, i99 = pct(idle_ms, 50), pct(idle_ms, 99)
    b50, b99 = pct(busy_ms, 50), pct(busy_ms, 99)
    print(f"{'idle':40} {len(idle_ms):7d} {i50:7.2f}ms {i99:7.2f}ms {idle_bad:7d}")
    label = f"during {n} concurrent logins"
    print(f"{label:40} {len(busy_ms):7d} {b50:7.2f}ms {b99:7.2f}ms {busy_bad:7d}")
    print(f"{'ratio (during / idle)':40} {'':7} {b50 / i50:8.2f}x {b99 / i99:8.2f}x")
    verdict = "meets" if b99 / i99 <= P99_AIM else "above"
    print(f"p99 during logins / idle: {b99 / i99:.2f} ({verdict} the {P99_AIM:g}x aim)")
    pause_ms = args.get_pause * 1000
    print(f"({args.get_clients} GET clients, each pausing {pause_ms:g} ms between requests)")
    for name, totals in (("logins", logins), ("logins during GETs", busy_logins)):
        if totals.failed:
            print(f"  ! {name} failures: {totals.failed}")


if __name__ == "__main__":
    sys.exit(main())
