"""The embedded store: one SQLite file, shared by every worker process of one gateway.

Owns the schema, the durability settings (WAL, synchronous=FULL) and the locking that keeps
read-modify-write operations atomic across processes (`BEGIN IMMEDIATE` plus a busy timeout).
Writes (which wait for fsync and for other processes' locks) and multi-row reads run on one
dedicated worker thread per store, so the event loop never blocks on them. Single-row reads by
primary key (`get`, `count`, on every authenticated request) run inline on a per-thread read
connection: in WAL mode a reader never waits for a writer and such a read takes a few
microseconds, against ~70 us for the hand-off to the worker thread. That connection has no busy
timeout and is query-only; if it fails in any way, the read is retried on the worker thread,
which reports the outage as before. Reads see every committed write (no cache). Expiry is
decided on every read with the injected clock; a background task only reclaims space.
This module never logs or formats a value, and never imports aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from gateway.clock import Clock, SystemClock
from gateway.store.base import StoreError, StoreUnavailable
from gateway.store.checks import check_kind, check_ttl, check_window

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, expires REAL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS counter (
    kind TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counter_expires ON counter (expires);
CREATE TABLE IF NOT EXISTS idx (
    name TEXT NOT NULL, member TEXT NOT NULL, PRIMARY KEY (name, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, event BLOB NOT NULL);
"""

_SELECT_LIVE = (
    "SELECT value FROM kv WHERE kind = ? AND key = ? AND (expires IS NULL OR expires > ?)"
)


class SQLiteStore:
    """`Store` on a SQLite file. Build it with `await SQLiteStore.open(path, ...)`."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        audit_cap: int = 100_000,
        busy_timeout: float = 10.0,
        sweep_interval: float = 60.0,
    ) -> None:
        if audit_cap < 1:
            raise ValueError("audit_cap must be at least 1")
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._audit_cap = audit_cap
        self._busy_ms = int(busy_timeout * 1000)
        self._sweep_interval = sweep_interval
        # One thread owns the connection: sqlite3 objects stay on the thread that made them.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-sqlite")
        self._conn: sqlite3.Connection | None = None
        # Inline single-row reads: one connection per thread that reads (normally the loop's).
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        clock: Clock | None = None,
        audit_cap: int = 100_000,
        busy_timeout: float = 10.0,
        sweep_interval: float = 60.0,
    ) -> SQLiteStore:
        store = cls(
            path,
            clock=clock,
            audit_cap=audit_cap,
            busy_timeout=busy_timeout,
            sweep_interval=sweep_interval,
        )
        try:
            await store._run("open", store._connect)
        except BaseException:
            store._executor.shutdown(wait=False)
            raise
        return store

    # -- plumbing ------------------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Create the file ourselves so it is never world-readable, even for an instant.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise StoreUnavailable(
                "sqlite open failed: OSError",
                cause=f"the database file cannot be created or opened ({exc.strerror})",
            ) from None
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            self._enter_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            # executescript commits on its own, so the transaction is spelled out in the script.
            conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a new file to WAL. Two workers opening a fresh file at once race here, and
        SQLite answers that race with SQLITE_BUSY at once, without calling the busy handler:
        retry until the busy timeout has passed."""
        deadline = time.monotonic() + self._busy_ms / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if _errname(exc) != "SQLITE_BUSY" or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    async def _run(self, op: str, fn: Callable[[], T]) -> T:
        if self._closed:
            raise StoreUnavailable("sqlite store is closed")
        self._ensure_sweeper()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except sqlite3.OperationalError as exc:
            # Locked past the busy timeout, disk full, I/O error, file gone: not reachable.
            name = _errname(exc)
            raise StoreUnavailable(f"sqlite {op} failed: {name}", cause=_cause(name)) from None
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite {op} failed: {_errname(exc)}") from None

    async def _read(self, op: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a single-row read inline on this thread's read connection; on any SQLite error
        (busy, I/O, file gone) drop that connection and run it on the worker thread instead."""
        if self._closed:
            raise StoreUnavailable("sqlite store is closed")
        self._ensure_sweeper()
        try:
            return fn(self._reader())
        except sqlite3.Error:
            self._drop_reader()
        return await self._run(op, lambda: fn(self._db))

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # mode=rw: never create a new, empty database if the file has gone.
            uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=rw"
            # timeout=0: a busy database fails at once (and the worker thread retries).
            # Only this thread uses it; check_same_thread=False lets close() run elsewhere.
            conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, timeout=0, check_same_thread=False
            )
            conn.execute("PRAGMA query_only = ON")
            with self._readers_lock:
                if self._closed:
                    conn.close()
                    raise sqlite3.OperationalError("closed")
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    def _drop_reader(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._readers_lock:
                if conn in self._readers:
                    self._readers.remove(conn)
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _statement(self, sql: str, *params: object) -> Callable[[], None]:
        def work() -> None:
            self._db.execute(sql, params).fetchall()

        return work

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError("not connected")
        return self._conn

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None and self._sweep_interval > 0:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            # A failed sweep is harmless (reads enforce expiry); try again next round.
            with contextlib.suppress(StoreError):
                await self.sweep()

    async def sweep(self) -> int:
        """Delete expired values and counters now; the number of rows removed."""

        def work() -> int:
            now = self._clock.now()
            with _immediate(self._db) as db:
                n = db.execute("DELETE FROM kv WHERE expires <= ?", (now,)).rowcount
                n += db.execute("DELETE FROM counter WHERE expires <= ?", (now,)).rowcount
            return n

        return await self._run("sweep", work)

    # -- values --------------------------------------------------------------------------------
    async def get(self, kind: str, key: str) -> bytes | None:
        check_kind(kind)

        return await self._read("get", lambda db: _live_value(db, kind, key, self._clock.now()))

    async def get_many(self, items: Sequence[tuple[str, str]]) -> list[bytes | None]:
        pairs = [(check_kind(kind), key) for kind, key in items]

        def work(db: sqlite3.Connection) -> list[bytes | None]:
            now = self._clock.now()
            return [_live_value(db, kind, key, now) for kind, key in pairs]

        return await self._read("get_many", work)

    async def put(self, kind: str, key: str, value: bytes, ttl: float | None = None) -> None:
        check_kind(kind)
        ttl = check_ttl(ttl)

        def work() -> None:
            expires = None if ttl is None else self._clock.now() + ttl
            self._db.execute(
                "INSERT OR REPLACE INTO kv (kind, key, value, expires) VALUES (?, ?, ?, ?)",
                (kind, key, bytes(value), expires),
            )

        await self._run("put", work)

    async def put_if_absent(
        self, kind: str, key: str, value: bytes, ttl: float | None = None
    ) -> bool:
        check_kind(kind)
        ttl = check_ttl(ttl)

        def work() -> bool:
            now = self._clock.now()
            expires = None if ttl is None else now + ttl
            with _immediate(self._db) as db:
                if _live_value(db, kind, key, now) is not None:
                    return False
                db.execute(
                    "INSERT OR REPLACE INTO kv (kind, key, value, expires) VALUES (?, ?, ?, ?)",
                    (kind, key, bytes(value), expires),
                )
                return True

        return await self._run("put_if_absent", work)

    async def compare_and_set(
        self,
        kind: str,
        key: str,
        expected: bytes | None,
        value: bytes | None,
        ttl: float | None = None,
    ) -> bool:
        check_kind(kind)
        ttl = check_ttl(ttl)

        def work() -> bool:
            now = self._clock.now()
            with _immediate(self._db) as db:
                current = _live_value(db, kind, key, now)
                if current != (None if expected is None else bytes(expected)):
                    return False
                if value is None:
                    db.execute("DELETE FROM kv WHERE kind = ? AND key = ?", (kind, key))
                else:
                    expires = None if ttl is None else now + ttl
                    db.execute(
                        "INSERT OR REPLACE INTO kv (kind, key, value, expires) VALUES (?, ?, ?, ?)",
                        (kind, key, bytes(value), expires),
                    )
                return True

        return await self._run("compare_and_set", work)

    async def delete(self, kind: str, key: str) -> bool:
        check_kind(kind)

        def work() -> bool:
            with _immediate(self._db) as db:
                live = _live_value(db, kind, key, self._clock.now()) is not None
                db.execute("DELETE FROM kv WHERE kind = ? AND key = ?", (kind, key))
            return live

        return await self._run("delete", work)

    async def scan(self, kind: str, prefix: str = "") -> list[tuple[str, bytes]]:
        check_kind(kind)

        def work() -> list[tuple[str, bytes]]:
            # A range walk on the primary key: keys with the prefix come first and in order.
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE kind = ? AND key >= ? "
                "AND (expires IS NULL OR expires > ?) ORDER BY key",
                (kind, prefix, self._clock.now()),
            )
            found = []
            for k, v in rows:
                if not k.startswith(prefix):
                    break
                found.append((k, bytes(v)))
            return found

        return await self._run("scan", work)

    # -- counters ------------------------------------------------------------------------------
    async def incr(self, kind: str, key: str, window: float, amount: int = 1) -> tuple[int, float]:
        check_kind(kind)
        window = check_window(window)

        def work() -> tuple[int, float]:
            now = self._clock.now()
            with _immediate(self._db) as db:
                row = db.execute(
                    "INSERT INTO counter (kind, key, value, expires) VALUES (?1, ?2, ?3, ?4) "
                    "ON CONFLICT (kind, key) DO UPDATE SET "
                    " value = CASE WHEN expires > ?5 THEN value + ?3 ELSE ?3 END,"
                    " expires = CASE WHEN expires > ?5 THEN expires ELSE ?4 END "
                    "RETURNING value, expires",
                    (kind, key, int(amount), now + window, now),
                ).fetchone()
            return int(row[0]), max(0.0, float(row[1]) - now)

        return await self._run("incr", work)

    async def count(self, kind: str, key: str) -> tuple[int, float]:
        check_kind(kind)

        def work(db: sqlite3.Connection) -> tuple[int, float]:
            now = self._clock.now()
            rows = db.execute(
                "SELECT value, expires FROM counter WHERE kind = ? AND key = ? AND expires > ?",
                (kind, key, now),
            ).fetchall()  # fetchall: the statement is finished, no read transaction left open
            return (0, 0.0) if not rows else (int(rows[0][0]), float(rows[0][1]) - now)

        return await self._read("count", work)

    # -- indexes -------------------------------------------------------------------------------
    async def index_add(self, index: str, member: str) -> None:
        sql = "INSERT OR IGNORE INTO idx (name, member) VALUES (?, ?)"
        await self._run("index_add", self._statement(sql, index, member))

    async def index_remove(self, index: str, member: str) -> None:
        sql = "DELETE FROM idx WHERE name = ? AND member = ?"
        await self._run("index_remove", self._statement(sql, index, member))

    async def index_members(self, index: str) -> list[str]:
        def work() -> list[str]:
            rows = self._db.execute(
                "SELECT member FROM idx WHERE name = ? ORDER BY member", (index,)
            ).fetchall()
            return [r[0] for r in rows]

        return await self._run("index_members", work)

    async def index_drop(self, index: str) -> None:
        await self._run("index_drop", self._statement("DELETE FROM idx WHERE name = ?", index))

    # -- audit ---------------------------------------------------------------------------------
    async def audit_append(self, event: bytes) -> None:
        def work() -> None:
            with _immediate(self._db) as db:
                cur = db.execute("INSERT INTO audit (event) VALUES (?)", (bytes(event),))
                # AUTOINCREMENT ids are dense and never reused, so this keeps exactly the cap.
                oldest_kept = int(cur.lastrowid or 0) - self._audit_cap + 1
                db.execute("DELETE FROM audit WHERE id < ?", (oldest_kept,))

        await self._run("audit_append", work)

    async def audit_tail(self, n: int) -> list[bytes]:
        if n <= 0:
            return []

        def work() -> list[bytes]:
            rows = self._db.execute(
                "SELECT event FROM audit ORDER BY id DESC LIMIT ?", (n,)
            ).fetchall()
            return [bytes(r[0]) for r in reversed(rows)]

        return await self._run("audit_tail", work)

    # -- lifecycle -----------------------------------------------------------------------------
    async def ping(self) -> None:
        await self._run("ping", self._statement("SELECT 1 FROM kv LIMIT 1"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            await loop.run_in_executor(self._executor, self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=False)


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the database lock up front, so two processes doing
    read-modify-write serialise on BEGIN (honouring busy_timeout) instead of deadlocking."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _live_value(db: sqlite3.Connection, kind: str, key: str, now: float) -> bytes | None:
    # fetchall: at most one row (primary key), and the statement ends here, so an inline
    # read leaves no read transaction open to hold back WAL checkpoints.
    rows = db.execute(_SELECT_LIVE, (kind, key, now)).fetchall()
    return bytes(rows[0][0]) if rows else None


def _errname(exc: sqlite3.Error) -> str:
    # sqlite_errorname ("SQLITE_BUSY") never carries data; str(exc) might quote SQL.
    return getattr(exc, "sqlite_errorname", None) or type(exc).__name__


_CAUSES = {
    "SQLITE_BUSY": "locked by another process past the busy timeout",
    "SQLITE_LOCKED": "locked by another process past the busy timeout",
    "SQLITE_CANTOPEN": "the database file cannot be opened (missing folder or permissions?)",
    "SQLITE_READONLY": "the database file is read-only",
    "SQLITE_FULL": "the disk is full",
    "SQLITE_IOERR": "an I/O error",
    "SQLITE_CORRUPT": "the database file is corrupt",
    "SQLITE_NOTADB": "the file is not a SQLite database",
}


def _cause(errname: str) -> str:
    for prefix, cause in _CAUSES.items():
        if errname.startswith(prefix):
            return cause
    return f"not usable ({errname})"
