"""Concurrent *correct* logins and the lockout (docs/lockout.md, "Concurrent logins"): users
behind one address (a NAT, loopback) logging in at once are never refused, and parallel logins
of one account are refused only beyond the account's limit of attempts in flight, without a
lock and without using up their address's limit.

"At once" is made exact rather than hoped for: every Argon2 thread of the gateway is kept busy
(real work on its real pool: a wait on an event), so each admitted attempt stays in flight,
reserved and queued for its hash, until the test lets the hashes run. The answers are read
over HTTP from the gateway's aiohttp server, on SQLite and on Redis; the last test runs
`gateway run --workers 2` as a process, as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator

import pytest

from gateway.auth.users import HashingPlan
from tests.auth.conftest import PASSWORD, AuthGw, auth_config, launch
from tests.support.gateway_process import PASSWORD as CLI_PASSWORD
from tests.support.gateway_process import add_user, start_gateway, stop_gateway, write_config

WRONG = "not the password at all"
REFUSED = (429, "1", {"error": "too_many_attempts"})  # status, Retry-After, body
IP_KEY = "127.0.0.1:0"  # the loopback client's IP counter, generation 0


@pytest.fixture(params=["sqlite", "redis"])
async def make_gw(request, upstream, tmp_path) -> AsyncIterator:
    """A gateway on SQLite or Redis with the given lockout settings."""
    runners = []

    async def make(**lockout: object) -> AuthGw:
        overrides: dict[str, object] = {"lockout": lockout}
        if request.param == "redis":
            overrides["store"] = {"url": request.getfixturevalue("redis_url")}
        agw = await launch(auth_config(upstream.url, tmp_path, **overrides))
        runners.append(agw.runner)
        return agw

    yield make
    for runner in runners:
        await runner.cleanup()


async def login(agw: AuthGw, name: str, password: str = PASSWORD) -> tuple[int, str | None, dict]:
    async with agw.client() as s:
        body = {"username": name, "password": password}
        async with s.post(agw.url + "/.gateway/login", json=body) as r:
            return r.status, r.headers.get("Retry-After"), await r.json()


@contextlib.asynccontextmanager
async def hashes_held(agw: AuthGw) -> AsyncIterator[None]:
    """Every Argon2 thread of `agw` busy until the block ends: the attempts the lockout admits
    wait for their hash, in flight, the way they do behind a burst of slow hashes."""
    pool = agw.auth.users.hasher.pool
    assert pool is not None, "the gateway hashes on its own pool"
    gate = threading.Event()
    held = [asyncio.ensure_future(pool.run(gate.wait, 60)) for _ in range(pool.plan.threads)]
    try:
        yield
    finally:
        gate.set()
        await asyncio.gather(*held)


async def until(predicate, what: str, timeout: float = 30.0) -> None:
    """Wait for a condition (never a timing assertion: only a bound on a hang)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def ip_count(agw: AuthGw) -> int:
    return (await agw.auth.lockout.store.count("lockip", IP_KEY))[0]


async def address_budget_left(agw: AuthGw, limit: int) -> None:
    """The address still has its whole limit: `limit` wrong guesses (on names no one has, so
    no account is locked) are 401, the next one 429."""
    answers = [(await login(agw, f"nobody-{i}", WRONG))[0] for i in range(limit + 1)]
    assert answers == [401] * limit + [429], answers


async def test_twenty_distinct_users_at_once_from_one_address_all_get_in(make_gw):
    # The address's limit is exactly the number of logins in flight: none is refused.
    agw = await make_gw(max_failures=5, ip_max_failures=20)
    names = [f"user{i:02d}" for i in range(20)]
    await asyncio.gather(*(agw.add_user(name) for name in names))
    async with hashes_held(agw):
        tasks = [asyncio.ensure_future(login(agw, name)) for name in names]

        async def all_reserved() -> bool:
            return await ip_count(agw) == 20

        await until(all_reserved, "20 logins in flight at once")
        assert not any(t.done() for t in tasks)
    answers = await asyncio.gather(*tasks)
    assert [a[:1] + a[2:] for a in answers] == [(200, {"status": "authenticated"})] * 20
    # Their sign-ins gave the address its slots back: it has all 20 failures left.
    assert await ip_count(agw) == 0
    await address_budget_left(agw, 20)


@pytest.mark.parametrize("failures_before", [0, 3])
async def test_parallel_logins_of_one_account_beyond_its_limit_get_429_and_no_lock(
    make_gw, failures_before
):
    """max_failures 5: attempts in flight plus answered failures may not exceed 5, so of 12
    parallel right passwords 5 - failures_before are verified and signed in, the rest are
    answered 429 at once with Retry-After 1, without a hash, a lock or a count."""
    # The address may have the failures and the 12 in flight.
    agw = await make_gw(max_failures=5, ip_max_failures=12 + failures_before)
    await agw.add_user()
    for _ in range(failures_before):
        assert (await login(agw, "alice", WRONG))[0] == 401
    admitted = 5 - failures_before
    verified_before = agw.auth.users.verifications
    async with hashes_held(agw):
        tasks = [asyncio.ensure_future(login(agw, "alice")) for _ in range(12)]

        async def the_rest_refused() -> bool:
            return sum(t.done() for t in tasks) == 12 - admitted

        await until(the_rest_refused, "the attempts over the limit to be answered")
        refused = [t.result() for t in tasks if t.done()]
        assert refused == [REFUSED] * (12 - admitted)
        # Refused before any hash: nothing more was verified than the attempts admitted.
        assert agw.auth.users.verifications - verified_before <= admitted
    answers = await asyncio.gather(*tasks)
    assert [a[0] for a in answers].count(200) == admitted
    assert agw.auth.users.verifications - verified_before == admitted
    # Nothing is locked and the count started afresh at the first sign-in.
    state = await agw.auth.lockout.state("alice")
    assert state.locked_until is None and state.attempts == 0
    assert (await login(agw, "alice"))[0] == 200
    # The refused attempts gave the address its slots back: it has its 12 failures left.
    await address_budget_left(agw, 12)


async def test_logins_up_to_the_limit_of_one_account_all_get_in(make_gw):
    """As many parallel right passwords as max_failures allows are all signed in."""
    agw = await make_gw(max_failures=5, ip_max_failures=100)
    await agw.add_user()
    async with hashes_held(agw):
        tasks = [asyncio.ensure_future(login(agw, "alice")) for _ in range(5)]

        async def all_reserved() -> bool:
            return await ip_count(agw) == 5

        await until(all_reserved, "5 logins in flight at once")
    answers = await asyncio.gather(*tasks)
    assert [a[0] for a in answers] == [200] * 5


async def test_workers_share_one_hashing_plan_and_distinct_users_all_get_in(tmp_path, redis_url):
    """`gateway run --workers 2` on Redis: each worker says where it hashes (the same cores,
    the same thread count), and 20 users logging in at once from loopback are all let in."""
    policy = "rules:\n  - name: open\n    match: {paths: ['/**']}\n    access: public\n"
    lockout = {"max_failures": 5, "window": "15m", "duration": "30m", "ip_max_failures": 20}
    config = write_config(
        tmp_path, "http://127.0.0.1:9", policy, store={"url": redis_url}, lockout=lockout
    )
    names = [f"user{i:02d}" for i in range(20)]
    await asyncio.gather(*(asyncio.to_thread(add_user, config, name) for name in names))
    gw = start_gateway(config, "--workers", "2")
    try:

        def plans() -> list[dict]:
            lines = [json.loads(x) for x in gw.log_text().splitlines() if x.startswith("{")]
            return [e for e in lines if e.get("msg") == "password hashing"]

        deadline = time.monotonic() + 30
        while len(plans()) < 2:
            assert time.monotonic() < deadline, gw.log_text()[-2000:]
            await asyncio.sleep(0.1)
        seen = plans()
        assert len({e["pid"] for e in seen}) == 2 and gw.proc.pid not in {e["pid"] for e in seen}
        want = HashingPlan.for_this_process().public()  # the workers run on this machine's cores
        assert [{k: e[k] for k in want} for e in seen] == [want, want]

        async with gw.client() as s:

            async def one(name: str) -> tuple[int, dict]:
                body = {"username": name, "password": CLI_PASSWORD}
                async with s.post(gw.url + "/.gateway/login", json=body) as r:
                    return r.status, await r.json()

            answers = await asyncio.gather(*(one(name) for name in names))
        assert answers == [(200, {"status": "authenticated"})] * 20
    finally:
        stop_gateway(gw)
