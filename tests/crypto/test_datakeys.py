"""Data keys on the real SQLite store: created once even when instances race, rotated without
losing old ciphertext, rewrapped under a new KEK while serving, and shredded on destroy."""

from __future__ import annotations

import asyncio
import os

import pytest

from gateway.clock import FixedClock
from gateway.crypto.datakeys import KIND, DataKeys
from gateway.crypto.errors import DecryptError, KeyNotFound
from gateway.crypto.keyring import Keyring
from gateway.crypto.token import make_opener, open_field, seal_field
from gateway.store import open_store

OLD = os.urandom(32)
NEW = os.urandom(32)


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture
async def stores(tmp_path, clock):
    """Two store handles on one database file: two gateway instances."""
    a = await open_store("sqlite:///keys.db", base_dir=tmp_path, clock=clock)
    b = await open_store("sqlite:///keys.db", base_dir=tmp_path, clock=clock)
    yield a, b
    await a.close()
    await b.close()


def keys(store, clock, ring=None, **kw):
    return DataKeys(store, ring or Keyring({"old": OLD}, "old"), clock, **kw)


async def test_first_use_by_two_racing_instances_creates_one_key(stores, clock):
    a, b = keys(stores[0], clock), keys(stores[1], clock)
    results = await asyncio.gather(*(dk.active("user:alice") for dk in [a, b, a, b]))
    assert set(results) == {results[0]} and results[0][0] == 1
    assert len(await stores[0].scan(KIND)) == 1


async def test_key_events_report_one_creation_per_race_and_nothing_on_cached_use(stores, clock):
    events: list[tuple[str, str, int]] = []

    async def record(event: str, scope: str, version: int) -> None:
        events.append((event, scope, version))

    a, b = keys(stores[0], clock, on_event=record), keys(stores[1], clock, on_event=record)
    await asyncio.gather(*(dk.active("user:alice") for dk in [a, b, a, b]))
    assert events == [("key.created", "user:alice", 1)]  # only the winner of put_if_absent
    for _ in range(5):  # the hot path: cached, no store write, no event
        await a.active("user:alice")
    clock.advance(61)
    await a.active("user:alice")  # cache expired: read again, still no new key
    assert await b.rotate("user:alice") == 2
    assert events == [("key.created", "user:alice", 1), ("key.rotated", "user:alice", 2)]


async def test_the_store_holds_only_wrapped_keys(stores, clock):
    dk = keys(stores[0], clock)
    _, key = await dk.active("user:alice")
    [(row_key, record)] = await stores[0].scan(KIND)
    assert row_key == "user:alice#0000000001" and key not in record


async def test_unknown_scope_or_version_is_key_not_found(stores, clock):
    dk = keys(stores[0], clock)
    with pytest.raises(KeyNotFound):
        await dk.get("user:nobody", 1)
    await dk.active("user:alice")
    with pytest.raises(KeyNotFound):
        await dk.get("user:alice", 2)
    assert await dk.all_keys("user:nobody") == {}


async def test_rotation_encrypts_with_the_new_version_and_old_tokens_still_open(stores, clock):
    a, b = keys(stores[0], clock), keys(stores[1], clock)
    v1, k1 = await a.active("role:admin")
    old_token = seal_field(k1, "role:admin", v1, b"old note")
    assert await b.rotate("role:admin") == 2
    v2, k2 = await b.active("role:admin")
    assert (v2, k2 != k1) == (2, True)
    assert open_field(await a.get("role:admin", 1), "role:admin", 1, old_token) == b"old note"
    # The other instance keeps its cached active version until the TTL, then follows.
    assert (await a.active("role:admin"))[0] == 1
    clock.advance(61)
    assert (await a.active("role:admin"))[0] == 2
    opener = make_opener("role:admin", await a.all_keys("role:admin"))
    assert opener(old_token) == b"old note"


async def test_destroy_shreds_every_version(stores, clock):
    a, b = keys(stores[0], clock), keys(stores[1], clock)
    v, key = await a.active("user:gone")
    token = seal_field(key, "user:gone", v, b"private")
    await a.rotate("user:gone")
    await b.get("user:gone", 1)  # cached on the other instance
    assert await a.destroy("user:gone") == 2
    with pytest.raises(KeyNotFound):
        await a.get("user:gone", 1)
    clock.advance(61)
    with pytest.raises(KeyNotFound):
        await b.get("user:gone", 1)
    # Re-created later, the scope gets a fresh key: the old token stays unreadable.
    v_new, fresh = await a.active("user:gone")
    assert v_new == 1 and fresh != key
    with pytest.raises(DecryptError):
        open_field(fresh, "user:gone", 1, token)


async def test_cache_serves_within_ttl_and_rereads_after(stores, clock):
    dk = keys(stores[0], clock, cache_ttl=30)
    await dk.active("user:alice")
    await stores[0].delete(KIND, "user:alice#0000000001")  # behind the manager's back
    await dk.get("user:alice", 1)
    clock.advance(31)
    with pytest.raises(KeyNotFound):
        await dk.get("user:alice", 1)


async def test_cache_is_bounded(stores, clock):
    dk = keys(stores[0], clock, cache_size=3)
    for i in range(10):
        await dk.active(f"user:u{i}")
    assert dk.cached == 3


async def test_a_wrapped_key_copied_to_another_user_does_not_unwrap(stores, clock):
    dk = keys(stores[0], clock)
    await dk.active("user:alice")
    record = await stores[0].get(KIND, "user:alice#0000000001")
    assert record is not None
    await stores[0].put(KIND, "user:mallory#0000000001", record)
    with pytest.raises(DecryptError):
        await dk.get("user:mallory", 1)


async def test_rewrap_under_a_new_kek_then_removing_the_old_kek_still_decrypts(stores, clock):
    before = keys(stores[0], clock)
    tokens = {}
    for scope in ("user:a", "user:b", "role:ops"):
        v, k = await before.active(scope)
        tokens[scope] = seal_field(k, scope, v, scope.encode())
    await before.rotate("user:a")

    both = keys(stores[1], clock, Keyring({"old": OLD, "new": NEW}, "new"))
    status = await both.status()
    assert (status.versions, status.scopes, status.needs_rewrap) == (4, 3, 4)
    assert status.rows_by_kek == {"old": 4}
    # Rewrap while another instance rotates: both finish, nothing is lost.
    report, _ = await asyncio.gather(both.rewrap_all(), before.rotate("user:b"))
    assert report.failed == []
    again = await both.rewrap_all()
    assert again.rewrapped <= 1 and again.failed == []  # the row the rotation added
    status = await both.status()
    assert status.needs_rewrap == 0 and set(status.rows_by_kek) == {"new"}

    only_new = keys(stores[0], clock, Keyring({"new": NEW}, "new"))
    for scope, token in tokens.items():
        assert open_field(await only_new.get(scope, 1), scope, 1, token) == scope.encode()


async def test_rows_under_a_removed_kek_are_reported_not_silently_skipped(stores, clock):
    await keys(stores[0], clock).active("user:a")
    new_only = keys(stores[0], clock, Keyring({"new": NEW}, "new"))
    status = await new_only.status()
    assert status.unknown_kek == 1 and status.needs_rewrap == 1
    report = await new_only.rewrap_all()
    assert report.failed == ["user:a#0000000001"] and report.rewrapped == 0


@pytest.mark.parametrize("scope", ["alice", "user:", "user:a#1", "user:a b", "group:x"])
async def test_malformed_scopes_are_refused(stores, clock, scope):
    with pytest.raises(ValueError):
        await keys(stores[0], clock).active(scope)
