"""The gateway's state store: one `Store` interface, an embedded and a shared backend.

Owns choosing the backend from `store.url` (see `url.py` for the accepted shapes). Callers get a
`Store` and the two errors and nothing else; they must never reach into a backend module, and
this package must never import aiohttp.

May import: `gateway.clock` only (the CLI and the edge use it alike, with or without a server).
"""

from __future__ import annotations

from pathlib import Path

from gateway.clock import Clock
from gateway.store.base import Store, StoreError, StoreUnavailable
from gateway.store.url import (
    ClusterTarget,
    RedisTarget,
    SentinelTarget,
    SQLiteTarget,
    parse_store_url,
)

__all__ = ["Store", "StoreError", "StoreUnavailable", "describe_failure", "open_store"]


async def open_store(url: str, *, base_dir: Path, clock: Clock | None = None) -> Store:
    """Open the store named by `url`. SQLite paths are relative to `base_dir` (the config file's
    folder). Redis backends connect lazily: an unreachable server shows up as StoreUnavailable
    on the first operation (`ping()` at start-up), not here. A malformed URL raises ValueError.
    `clock` drives SQLite expiry; Redis expires keys on its own clock."""
    target = parse_store_url(url, base_dir=base_dir)
    if isinstance(target, SQLiteTarget):
        from gateway.store.sqlite import SQLiteStore

        return await SQLiteStore.open(target.path, clock=clock)

    from gateway.store import redis as backend

    if isinstance(target, RedisTarget):
        return backend.connect_url(target.url)
    if isinstance(target, SentinelTarget):
        return backend.connect_sentinel(
            target.sentinels,
            target.service,
            db=target.db,
            username=target.username,
            password=target.password,
        )
    if isinstance(target, ClusterTarget):
        return backend.connect_cluster(
            target.nodes, username=target.username, password=target.password
        )
    raise AssertionError(f"unhandled store target {type(target).__name__}")


def describe_failure(url: str, exc: StoreError) -> str:
    """What an operator reads when the store fails: which store (the URL without its password)
    and why, e.g. `store at redis://***@db:6379/0 is unreachable: connection refused`."""
    from gateway.store.url import redact_url

    if isinstance(exc, StoreUnavailable):
        return f"store at {redact_url(url)} is unreachable: {exc.cause}"
    return f"store at {redact_url(url)} failed: {exc}"
