"""Argon2id as an operator relies on it: hashes upgraded on login, and no timing difference an
attacker could use to tell known users from unknown ones."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

from argon2 import PasswordHasher, Type

from tests.auth.conftest import PASSWORD


async def test_hash_with_old_parameters_is_upgraded_on_login(agw):
    user = await agw.add_user()
    old = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1, type=Type.ID).hash(PASSWORD)
    await agw.auth.users.save(replace(user, password_hash=old))
    async with agw.client() as s:
        await agw.login(s)
    stored = (await agw.auth.users.get("alice")).password_hash
    assert stored != old and stored.startswith("$argon2id$") and "m=1024,t=1" in stored
    assert (await agw.auth.users.get("alice")).last_login == agw.clock.now()


async def test_unknown_and_known_users_take_the_same_time(make_gateway):
    agw = await make_gateway(
        passwords={"argon2": {"time_cost": 2, "memory_cost": 8192, "parallelism": 1}},
        # 100 wrong guesses: this test is about timing, not lockout (tests/auth/test_lockout.py).
        lockout={"max_failures": 1000, "ip_max_failures": 1000},
    )
    await agw.add_user()

    async def timed(name: str) -> float:
        started = time.perf_counter()
        async with s.post(
            agw.url + "/.gateway/login", json={"username": name, "password": "wrong guess!!"}
        ) as r:
            assert r.status == 401
            await r.read()
        return time.perf_counter() - started

    async with agw.client() as s:
        known, unknown = [], []
        for _ in range(50):
            known.append(await timed("alice"))
            unknown.append(await timed("nobody-here"))
    ratio = statistics.median(known) / statistics.median(unknown)
    assert 0.7 < ratio < 1.4, ratio
