"""Lockout atomicity across real OS processes (issue 7, docs/lockout.md): 100 wrong guesses
sent at once, split over gateway processes sharing one store, cost at most `max_failures`
password verifications and are then answered 429; a known and an unknown name are answered
alike. tests/auth/test_lockout.py proves the same with in-process instances; here every
gateway is a `gateway run` subprocess, users are made with the CLI, and everything is
observed from outside as an operator (or attacker) would.

How the verifications are counted from outside: `verify_login` (one Argon2 verify, or the
equal dummy hash for an unknown or disabled name) is the only place a password is checked, and
every wrong answer from it is recorded as exactly one `login.failure` audit event, which is
also what moves `gateway_auth_attempts_total{factor="password",result="failure"}`
(gateway/portal/pages.py `login`, gateway/auth/audit.py). An attempt refused by the lockout
(`Regulator.reserve`, before any lookup or hash) records neither. So the number of wrong
passwords actually verified is both the `login.failure` events in the shared store
(`gateway audit tail`) and the sum of that metric over the processes' metrics listeners; the
tests check that both agree with the number of 401 answers, which is exactly max_failures
(never more; and not fewer, since only the max_failures-th answered failure sets the lock).
Then: one lock started over all processes (`gateway_lockouts_total`, one `login.locked`), the
right password is refused too, `gateway users show` reports the lock with a fresh, empty count
(no refused attempt left counted on it), an unknown name gets the same kinds of answer, and one
guess at a time (alternating processes) a known and an unknown name get the same sequence.

Backends:
- Redis: two single-worker `gateway run` processes on two ports, one redis-server.
- SQLite, deterministic: two single-worker `gateway run` processes on two ports sharing one
  SQLite file (every request goes to the process whose port it was sent to).
- SQLite, `gateway run --workers 2`: one port, SO_REUSEPORT, the kernel spreads connections
  over the two workers. The access log carries no pid, so which worker answered is read from
  /proc: after the burst the client's keep-alive connections are still open, and each worker
  pid is shown to own some of the accepted sockets on the gateway port (a connection is answered
  by the worker that accepted it). Without that the test would prove nothing about two workers.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.support.gateway_process import (
    PASSWORD,
    Running,
    add_user,
    gateway_cli,
    start_gateway,
    stop_gateway,
    wait_until,
    write_config,
)

MAX_FAILURES = 5
# ip_max_failures high: the one loopback client address must not hit its own limit here.
LOCKOUT = {
    "max_failures": MAX_FAILURES,
    "window": "15m",
    "duration": "30m",
    "ip_max_failures": 10**5,
}
POLICY = """rules:
  - name: open
    match: {paths: ["/**"]}
    access: public
"""
UPSTREAM = "http://127.0.0.1:9"  # never reached: only /.gateway/login is asked
WRONG = "not the password at all"
BURST = 100
INVALID = (401, {"error": "invalid_credentials"})
LOCKED = (429, {"error": "too_many_attempts"})

Answer = tuple[int, str | None, dict]


def configs(folder: Path, store_url: str, count: int) -> list[Path]:
    return [
        write_config(
            folder, UPSTREAM, POLICY, name=f"gw{i}", store={"url": store_url}, lockout=LOCKOUT
        )
        for i in range(count)
    ]


@contextmanager
def gateways(*configs: Path, run_argv: tuple[str, ...] = ()) -> Iterator[list[Running]]:
    running: list[Running] = []
    try:
        for config in configs:
            running.append(start_gateway(config, *run_argv))
        yield running
    finally:
        for gw in running:
            stop_gateway(gw)


async def login(s: aiohttp.ClientSession, url: str, name: str, password: str) -> Answer:
    async with s.post(url + "/.gateway/login", json={"username": name, "password": password}) as r:
        assert r.content_type == "application/json", (r.status, await r.text())
        return r.status, r.headers.get("Retry-After"), await r.json()


async def burst(
    s: aiohttp.ClientSession, urls: list[str], name: str, n: int = BURST
) -> list[Answer]:
    """`n` wrong guesses for `name` at once, spread evenly over `urls`."""
    return list(
        await asyncio.gather(*(login(s, urls[i % len(urls)], name, WRONG) for i in range(n)))
    )


def session(limit: int = BURST) -> aiohttp.ClientSession:
    # One connection per request in flight, kept alive afterwards (see the --workers test).
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, force_close=False))


def metric(gws: list[Running], name: str, **labels: str) -> float:
    want = frozenset(labels.items())
    return sum(
        value
        for gw in gws
        for (sample, got), value in gw.scrape().items()
        if sample == name and want <= got
    )


def password_failures(gws: list[Running]) -> float:
    return metric(gws, "gateway_auth_attempts_total", factor="password", result="failure")


def check_audit(gw: Running, *users: str) -> None:
    """Each raced user has max_failures `login.failure` events (one per password verified)
    and one `login.locked`, in the shared store, read with the CLI an operator uses (once per
    test: each CLI run is a Python start)."""
    counts = {user: {"login.failure": 0, "login.locked": 0} for user in users}
    for e in gw.tail("-n", "2000"):
        if e["user"] in counts and e["event"] in counts[e["user"]]:
            counts[e["user"]][e["event"]] += 1
    want = {"login.failure": MAX_FAILURES, "login.locked": 1}
    assert counts == {user: want for user in users}, counts


def check_burst(answers: list[Answer]) -> int:
    """Only 401 invalid_credentials and 429 too_many_attempts (with a Retry-After in the
    lock's range), max_failures of them 401. Returns the number of 401s."""
    for status, retry_after, body in answers:
        assert (status, body) in (INVALID, LOCKED), (status, body)
        if status == 429:
            assert retry_after is not None and 1 <= int(retry_after) <= 1800, retry_after
    invalid = sum(1 for a in answers if a[0] == 401)
    # Never more than max_failures; and exactly that many, since the lock comes from the
    # max_failures-th *answered* failure: no slot already granted is refused by it.
    assert invalid == MAX_FAILURES, [a[0] for a in answers]
    return invalid


async def race(gws: list[Running], urls: list[str], name: str) -> list[Answer]:
    """The burst for `name` and every outside count of what it cost."""
    failures_before = password_failures(gws)
    lockouts_before = metric(gws, "gateway_lockouts_total", scope="account")
    async with session() as s:
        answers = await burst(s, urls, name)
    invalid = check_burst(answers)
    # Password verifications actually performed: the metric here, the audit in check_audit.
    assert password_failures(gws) - failures_before == invalid
    # Exactly one lock was started, by one process, whoever answered the failures.
    assert metric(gws, "gateway_lockouts_total", scope="account") - lockouts_before == 1
    return answers


async def locked_for_the_right_password(urls: list[str], name: str) -> None:
    async with session() as s:
        for url in urls:
            status, retry_after, body = await login(s, url, name, PASSWORD)
            assert (status, body) == LOCKED and retry_after is not None


def lock_shown(config: Path, name: str) -> None:
    """`gateway users show`: locked, and the count the lock started afresh is empty: no attempt
    refused during the burst stayed counted on it (that would lengthen the lock)."""
    res = gateway_cli(config, "users", "show", name)
    assert res.returncode == 0, res.stderr
    lockout = json.loads(res.stdout)["lockout"]
    assert lockout["locked"] is True and lockout["failed_attempts"] == 0, lockout


def same_answers(known: list[Answer], unknown: list[Answer]) -> None:
    """The same kinds of answer; Retry-After only to the second (the lock's age differs)."""
    assert {(a[0], json.dumps(a[2])) for a in known} == {(a[0], json.dumps(a[2])) for a in unknown}


async def two_processes(store_url: str, folder: Path) -> None:
    """Two single-worker processes on one store: the race for a known and an unknown name,
    the lock holds against the right password, then the one-at-a-time sequence."""
    cfgs = configs(folder, store_url, 2)
    add_user(cfgs[0], "carol")
    add_user(cfgs[1], "dave")  # through the other config: the same store
    with gateways(*cfgs) as gws:
        urls = [gw.url for gw in gws]
        known = await race(gws, urls, "carol")
        lock_shown(cfgs[1], "carol")
        await locked_for_the_right_password(urls, "carol")
        unknown = await race(gws, urls, "nobody-here")
        same_answers(known, unknown)
        check_audit(gws[1], "carol", "nobody-here")
        # The other account is untouched by carol's lock (the lock is per account).
        async with session() as s:
            assert (await login(s, urls[1], "dave", PASSWORD))[0] == 200
        await same_sequence(urls)


async def same_sequence(urls: list[str]) -> None:
    """One guess at a time, alternating processes: answer by answer the same status, body and
    (to the second) Retry-After for a user that exists (dave) and one that does not."""
    answers: dict[str, list[Answer]] = {}
    async with session() as s:
        for name in ("dave", "nemo"):
            answers[name] = [await login(s, urls[i % 2], name, WRONG) for i in range(8)]
        for name in ("dave", "nemo"):
            answers[name].append(await login(s, urls[0], name, PASSWORD))
    dave, nemo = answers["dave"], answers["nemo"]
    assert [(a[0], a[2]) for a in dave] == [INVALID] * MAX_FAILURES + [LOCKED] * 4
    assert [(a[0], a[2]) for a in nemo] == [(a[0], a[2]) for a in dave]
    for a, b in zip(dave, nemo, strict=True):
        assert (a[1] is None) == (b[1] is None)
        if a[1] is not None:
            assert abs(int(a[1]) - int(b[1])) <= 1 and int(a[1]) <= 1800


async def test_redis_two_processes(redis_url: str, tmp_path: Path) -> None:
    await two_processes(redis_url, tmp_path)


async def test_sqlite_two_processes(tmp_path: Path) -> None:
    await two_processes("sqlite:///gw.db", tmp_path)  # both configs in one folder: one gw.db


# -- SQLite: one `gateway run --workers 2` -----------------------------------------------------


def _accepted_sockets(port: int) -> set[str]:
    """Inodes of established sockets whose local end is `port` (the gateway's side)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def sockets_per_process(port: int, pids: list[int]) -> dict[int, int]:
    inodes = _accepted_sockets(port)
    owned = {}
    for pid in pids:
        n = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            n += target.startswith("socket:[") and target[8:-1] in inodes
        owned[pid] = n
    return owned


def worker_pids(gw: Running) -> list[int]:
    lines = [json.loads(x) for x in gw.log_text().splitlines() if x.startswith("{")]
    return sorted({e["pid"] for e in lines if e.get("msg") == "listening"})


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
async def test_sqlite_workers_race(tmp_path: Path) -> None:
    (config,) = configs(tmp_path, "sqlite:///gw.db", 1)
    add_user(config, "carol")
    with gateways(config, run_argv=("--workers", "2")) as (gw,):
        port = int(gw.url.rsplit(":", 1)[1])
        # healthz answers once one worker listens: wait for both.
        pids = wait_until(lambda: len(worker_pids(gw)) == 2 and worker_pids(gw), "2 workers")
        assert gw.proc.pid not in pids, pids
        for name in ("carol", "nobody-here"):
            failures_before = password_failures([gw])
            async with session() as s:
                answers = await burst(s, [gw.url], name)
                # Both workers answered part of the burst: each owns accepted connections.
                owned = sockets_per_process(port, pids)
            assert all(owned.values()) and sum(owned.values()) >= 2, owned
            invalid = check_burst(answers)
            # The supervisor's listener sums the workers' metrics.
            assert password_failures([gw]) - failures_before == invalid
        check_audit(gw, "carol", "nobody-here")
        assert metric([gw], "gateway_lockouts_total", scope="account") == 2
        lock_shown(config, "carol")
        await locked_for_the_right_password([gw.url], "carol")
