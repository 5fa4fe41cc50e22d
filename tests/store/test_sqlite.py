"""What only the embedded store does: reclaim expired rows in the background, stop cleanly,
and report a database held locked by another process as unavailable instead of hanging."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.clock import FixedClock
from gateway.store import StoreUnavailable
from gateway.store.sqlite import SQLiteStore


def _rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608


async def test_background_sweep_reclaims_expired_rows(tmp_path: Path) -> None:
    clock = FixedClock()
    path = tmp_path / "gw.db"
    store = await SQLiteStore.open(path, clock=clock, sweep_interval=0.05)
    try:
        await store.put("session", "old", b"x", ttl=1)
        await store.put("session", "kept", b"x")
        await store.incr("lock", "fail:alice", 1)
        clock.advance(2)
        for _ in range(100):
            if _rows(path, "kv") == 1 and _rows(path, "counter") == 0:
                break
            await asyncio.sleep(0.02)
        assert (_rows(path, "kv"), _rows(path, "counter")) == (1, 0)
        assert await store.scan("session") == [("kept", b"x")]
    finally:
        await store.close()


async def test_closed_store_refuses_operations_and_stops_its_sweeper(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "gw.db", sweep_interval=0.05)
    await store.ping()
    sweeper = store._sweeper
    await store.close()
    assert sweeper is not None and sweeper.done()
    with pytest.raises(StoreUnavailable):
        await store.get("user", "alice")
    await store.close()  # idempotent


async def test_database_locked_by_another_process_is_unavailable_not_a_hang(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gw.db"
    store = await SQLiteStore.open(path, busy_timeout=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="SQLITE_BUSY"):
            await store.incr("lock", "fail:alice", 60)
        assert await store.get("user", "alice") is None  # WAL readers are not blocked
        other.execute("ROLLBACK")
        assert (await store.incr("lock", "fail:alice", 60))[0] == 1
    finally:
        other.close()
        await store.close()


async def test_reads_do_not_queue_behind_a_write_waiting_for_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    store = await SQLiteStore.open(path, busy_timeout=5.0)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await store.put("session", "s1", b"record")
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        write = asyncio.ensure_future(store.incr("rate", "r:ip", 60))
        await asyncio.sleep(0.05)  # the write now waits inside the worker thread
        assert not write.done()
        assert await store.get("session", "s1") == b"record"
        assert await store.count("rate", "r:ip") == (0, 0.0)
        assert not write.done()  # the reads were answered while the write still waited
        other.execute("ROLLBACK")
        assert (await write)[0] == 1
        assert (await store.count("rate", "r:ip"))[0] == 1
    finally:
        other.close()
        await store.close()


async def test_reads_see_another_instances_writes_at_once(tmp_path: Path) -> None:
    """No cache: a revocation or a disable by another worker or instance counts on the very
    next read."""
    path = tmp_path / "gw.db"
    a = await SQLiteStore.open(path)
    b = await SQLiteStore.open(path)
    try:
        for i in range(50):
            await a.put("session", "s", b"v%d" % i)
            assert await b.get("session", "s") == b"v%d" % i
            assert await b.delete("session", "s")
            assert await a.get("session", "s") is None
            await b.incr("rate", "k", 60)
            assert (await a.count("rate", "k"))[0] == i + 1
    finally:
        await a.close()
        await b.close()


async def test_a_failing_inline_read_is_retried_on_the_worker_and_creates_no_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gw.db"
    store = await SQLiteStore.open(path)
    try:
        await store.put("user", "alice", b"A")
        await store.close()
        store = await SQLiteStore.open(path)
        await store.put("user", "bob", b"B")  # opens the worker's connection, not a reader
        moved = tmp_path / "moved.db"
        path.rename(moved)  # the inline reader cannot open the file now; the worker still has it
        assert await store.get("user", "alice") == b"A"
        assert await store.count("rate", "x") == (0, 0.0)
        assert not path.exists()  # no empty database created in its place
    finally:
        await store.close()


async def test_closed_store_refuses_inline_reads_too(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "gw.db")
    await store.put("user", "alice", b"A")
    assert await store.get("user", "alice") == b"A"  # the inline reader is open now
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.get("user", "alice")
    with pytest.raises(StoreUnavailable):
        await store.count("rate", "x")
