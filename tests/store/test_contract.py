"""The Store contract, run against every backend (sqlite, redis, redis-cluster, redis-sentinel).

Each test states a promise other modules rely on: sessions expire, a nonce is accepted once,
lockout windows do not slide, counters stay exact across worker processes, data survives a
restart, and an outage is reported (and recovered from) without a new Store object.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.store.conftest import Backend

REPO = Path(__file__).resolve().parents[2]


async def test_put_get_delete_round_trip_binary_values(backend: Backend) -> None:
    s = backend.store
    blob = bytes(range(256))
    assert await s.get("user", "alice") is None
    await s.put("user", "alice", blob)
    assert await s.get("user", "alice") == blob
    await s.put("user", "alice", b"v2")
    assert await s.get("user", "alice") == b"v2"
    assert await s.delete("user", "alice") is True
    assert await s.delete("user", "alice") is False
    assert await s.get("user", "alice") is None


async def test_kinds_are_separate_namespaces(backend: Backend) -> None:
    s = backend.store
    await s.put("user", "x", b"user")
    await s.put("session", "x", b"session")
    assert await s.get("user", "x") == b"user"
    assert await s.get("session", "x") == b"session"
    assert await s.scan("user") == [("x", b"user")]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", ["al", "alice", "alice:1", "alice:2", "Alice", "bob:1", "a%_*?[x]"]),
        ("al", ["al", "alice", "alice:1", "alice:2"]),
        ("alice:", ["alice:1", "alice:2"]),
        ("alice:1", ["alice:1"]),
        ("A", ["Alice"]),
        ("a%_*", ["a%_*?[x]"]),
        ("zzz", []),
    ],
)
async def test_scan_returns_live_keys_with_prefix_in_key_order(
    backend: Backend, prefix: str, expected: list[str]
) -> None:
    s = backend.store
    keys = ["alice:2", "alice", "bob:1", "al", "alice:1", "Alice", "a%_*?[x]"]
    for k in keys:
        await s.put("session", k, k.encode())
    await s.put("session", "alice:expired", b"x", ttl=0.2)
    await s.put("user", "alice:other-kind", b"x")
    await backend.pass_time(0.35)
    assert await s.scan("session", prefix) == sorted((k, k.encode()) for k in expected)


async def test_value_with_ttl_expires(backend: Backend) -> None:
    s = backend.store
    await s.put("session", "sid", b"data", ttl=0.25)
    await s.put("session", "forever", b"data")
    assert await s.get("session", "sid") == b"data"
    await backend.pass_time(0.4)
    assert await s.get("session", "sid") is None
    assert await s.get("session", "forever") == b"data"
    assert await s.delete("session", "sid") is False


async def test_put_without_ttl_clears_an_earlier_expiry(backend: Backend) -> None:
    s = backend.store
    await s.put("session", "sid", b"short", ttl=0.2)
    await s.put("session", "sid", b"kept")
    await backend.pass_time(0.35)
    assert await s.get("session", "sid") == b"kept"


async def test_put_if_absent_raced_by_100_tasks_is_won_exactly_once(backend: Backend) -> None:
    s = backend.store
    results = await asyncio.gather(
        *(s.put_if_absent("totp", "used:alice:123456", b"%d" % i, ttl=30) for i in range(100))
    )
    assert results.count(True) == 1
    winner = results.index(True)
    assert await s.get("totp", "used:alice:123456") == b"%d" % winner


async def test_put_if_absent_succeeds_again_after_expiry(backend: Backend) -> None:
    s = backend.store
    assert await s.put_if_absent("totp", "used", b"1", ttl=0.2) is True
    assert await s.put_if_absent("totp", "used", b"2", ttl=0.2) is False
    await backend.pass_time(0.35)
    assert await s.put_if_absent("totp", "used", b"3") is True
    assert await s.get("totp", "used") == b"3"


async def test_compare_and_set_swaps_only_on_the_expected_value(backend: Backend) -> None:
    s = backend.store
    assert await s.compare_and_set("refresh", "t", b"old", b"new") is False  # absent != b"old"
    assert await s.get("refresh", "t") is None
    assert await s.compare_and_set("refresh", "t", None, b"v1") is True  # None means absent
    assert await s.compare_and_set("refresh", "t", None, b"v2") is False
    assert await s.compare_and_set("refresh", "t", b"wrong", b"v2") is False
    assert await s.get("refresh", "t") == b"v1"
    assert await s.compare_and_set("refresh", "t", b"v1", b"v2") is True
    assert await s.get("refresh", "t") == b"v2"
    assert await s.compare_and_set("refresh", "t", b"v2", None) is True  # value None deletes
    assert await s.get("refresh", "t") is None
    assert await s.compare_and_set("refresh", "t", b"v2", None) is False


async def test_compare_and_set_treats_an_expired_value_as_absent_and_sets_ttl(
    backend: Backend,
) -> None:
    s = backend.store
    await s.put("refresh", "t", b"v1", ttl=0.2)
    await backend.pass_time(0.35)
    assert await s.compare_and_set("refresh", "t", b"v1", b"v2") is False
    assert await s.compare_and_set("refresh", "t", None, b"v2", ttl=0.2) is True
    await backend.pass_time(0.35)
    assert await s.get("refresh", "t") is None


async def test_refresh_token_rotation_has_one_winner_under_race(backend: Backend) -> None:
    s = backend.store
    await s.put("refresh", "family", b"gen0")
    results = await asyncio.gather(
        *(s.compare_and_set("refresh", "family", b"gen0", b"gen1-%d" % i) for i in range(50))
    )
    assert results.count(True) == 1
    assert await s.get("refresh", "family") == b"gen1-%d" % results.index(True)


async def test_incr_window_starts_at_first_increment_and_is_not_extended(
    backend: Backend,
) -> None:
    s = backend.store
    window = 0.6
    assert await s.count("lock", "fail:alice") == (0, 0.0)
    value, left = await s.incr("lock", "fail:alice", window)
    assert value == 1 and window - 0.1 < left <= window
    await backend.pass_time(0.3)
    value, left = await s.incr("lock", "fail:alice", window, amount=5)
    assert value == 6
    assert 0 < left <= window - 0.25  # the later increment did not restart the window
    count, count_left = await s.count("lock", "fail:alice")
    assert count == 6 and 0 < count_left <= left
    await backend.pass_time(0.45)
    assert await s.count("lock", "fail:alice") == (0, 0.0)
    value, left = await s.incr("lock", "fail:alice", window)
    assert value == 1 and window - 0.1 < left <= window


async def test_counters_and_values_do_not_collide(backend: Backend) -> None:
    s = backend.store
    await s.put("lock", "alice", b"locked-until")
    assert await s.incr("lock", "alice", 60) == (1, pytest.approx(60, abs=0.5))
    assert await s.get("lock", "alice") == b"locked-until"


async def test_index_add_remove_members_drop(backend: Backend) -> None:
    s = backend.store
    assert await s.index_members("sessions:alice") == []
    for sid in ["s2", "s1", "s3", "s1"]:
        await s.index_add("sessions:alice", sid)
    await s.index_add("sessions:bob", "s9")
    assert await s.index_members("sessions:alice") == ["s1", "s2", "s3"]
    await s.index_remove("sessions:alice", "s2")
    await s.index_remove("sessions:alice", "absent")
    assert await s.index_members("sessions:alice") == ["s1", "s3"]
    await s.index_drop("sessions:alice")
    assert await s.index_members("sessions:alice") == []
    assert await s.index_members("sessions:bob") == ["s9"]


async def test_audit_tail_is_oldest_first_and_stream_is_capped(backend: Backend) -> None:
    s = await backend.open(audit_cap=5)
    assert await s.audit_tail(3) == []
    for i in range(12):
        await s.audit_append(b"event-%d" % i)
    assert await s.audit_tail(3) == [b"event-9", b"event-10", b"event-11"]
    assert await s.audit_tail(100) == [b"event-%d" % i for i in range(7, 12)]
    assert await s.audit_tail(0) == []


async def test_500_increments_from_two_processes_are_all_counted(backend: Backend) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.store.incr_worker",
            backend.url,
            str(backend.base_dir),
            "250",
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        for _ in range(2)
    ]
    for p in procs:
        assert await asyncio.wait_for(p.stdout.readline(), 20) == b"ready\n"
    for p in procs:  # both are connected: release them together
        p.stdin.write(b"go\n")
        await p.stdin.drain()
    outputs = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    seen = sorted(v for out, _ in outputs for v in json.loads(out))
    assert seen == list(range(1, 501))  # every increment got its own value: none lost
    assert (await backend.store.count("lock", "shared:counter"))[0] == 500


async def test_records_survive_a_restart(backend: Backend) -> None:
    await backend.store.put("user", "alice", b"record")
    await backend.store.index_add("sessions:alice", "s1")
    await backend.store.audit_append(b"login")
    await backend.store.incr("lock", "fail:alice", 600)
    await backend.restart()
    s = backend.store
    assert await s.get("user", "alice") == b"record"
    assert await s.index_members("sessions:alice") == ["s1"]
    assert await s.audit_tail(1) == [b"login"]
    assert (await s.count("lock", "fail:alice"))[0] == 1


async def test_get_many_answers_each_pair_in_order(backend: Backend) -> None:
    s = backend.store
    assert await s.get_many([]) == []
    await s.put("user", "alice", b"A")
    await s.put("mfa", "alice", b"M")
    await s.put("user", "bob", b"B", ttl=0.3)
    await s.put("session", "s:1", b"S")
    pairs = [("mfa", "alice"), ("user", "bob"), ("user", "carol"), ("user", "alice")]
    pairs += [("session", "s:1"), ("mfa", "bob")]
    assert await s.get_many(pairs) == [b"M", b"B", None, b"A", b"S", None]
    await backend.pass_time(0.35)
    await s.delete("mfa", "alice")
    assert await s.get_many(pairs) == [None, None, None, b"A", b"S", None]
    assert await s.get_many([("user", "alice")] * 3) == [b"A"] * 3
    with pytest.raises(ValueError):
        await s.get_many([("user", "alice"), ("bad:kind", "x")])
