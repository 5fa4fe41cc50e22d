"""The `backend` fixture: one contract suite, run against every store backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.clock import FixedClock
from gateway.store import Store, open_store
from gateway.store.redis import RedisStore, connect_cluster, connect_sentinel, connect_url
from gateway.store.sqlite import SQLiteStore
from gateway.store.url import ClusterTarget, SentinelTarget, parse_store_url

BACKENDS = ["sqlite", "redis", "redis-cluster", "redis-sentinel"]


@dataclass
class Backend:
    """A store under test plus the operator actions the contract talks about."""

    name: str
    url: str
    base_dir: Path
    clock: FixedClock | None
    stop_servers: Callable[[], None]
    start_servers: Callable[[], None]
    store: Store = field(init=False)
    _opened: list[Store] = field(default_factory=list)

    async def open(self, *, audit_cap: int = 100_000) -> Store:
        """Another store object on the same data (as a second worker or a restart would)."""
        if self.name == "sqlite":
            target = parse_store_url(self.url, base_dir=self.base_dir)
            store: Store = await SQLiteStore.open(
                target.path,  # type: ignore[union-attr]
                clock=self.clock,
                audit_cap=audit_cap,
            )
        else:
            store = _redis_store(self.url, audit_cap)
        self._opened.append(store)
        return store

    async def pass_time(self, seconds: float) -> None:
        """SQLite expiry follows the injected clock; Redis expires keys on its own clock."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    async def restart(self) -> None:
        """What an operator's restart means for this backend: reopen the file, or restart
        redis-server(s) underneath the same client."""
        if self.name == "sqlite":
            await self.store.close()
            self.store = await self.open()
        else:
            self.stop_servers()
            self.start_servers()

    async def close_all(self) -> None:
        for store in self._opened:
            await store.close()


def _redis_store(url: str, audit_cap: int) -> RedisStore:
    target = parse_store_url(url, base_dir=Path("."))
    if isinstance(target, ClusterTarget):
        return connect_cluster(target.nodes, audit_cap=audit_cap)
    if isinstance(target, SentinelTarget):
        return connect_sentinel(target.sentinels, target.service, audit_cap=audit_cap)
    return connect_url(url, audit_cap=audit_cap)


def _noop() -> None:
    return None


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    name = request.param
    clock = None
    if name == "sqlite":
        clock = FixedClock()
        b = Backend(name, "sqlite:///state/gateway.db", tmp_path, clock, _noop, _noop)
    elif name == "redis":
        server = request.getfixturevalue("redis_server")
        url = request.getfixturevalue("redis_url")
        b = Backend(name, url, tmp_path, None, server.stop, server.start)
    elif name == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster")
        url = request.getfixturevalue("redis_cluster_url")
        b = Backend(name, url, tmp_path, None, cluster.stop, cluster.start)
    else:
        sentinel = request.getfixturevalue("redis_sentinel")
        url = request.getfixturevalue("redis_sentinel_url")
        b = Backend(name, url, tmp_path, None, sentinel.master.stop, sentinel.master.start)
    b.store = await open_store(b.url, base_dir=tmp_path, clock=clock)
    b._opened.append(b.store)
    try:
        yield b
    finally:
        b.start_servers()
        await b.close_all()
