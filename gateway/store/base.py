"""The store contract: every piece of state the gateway keeps goes through this interface.

Two backends implement it (`sqlite.py`, `redis.py`). Values are opaque bytes; callers own the
encoding. Nothing here imports aiohttp.web or knows about HTTP: failures surface as
`StoreUnavailable`, which the web layer maps to 503 (fail closed).

Namespaces (`kind`) are short ASCII names such as "user", "session", "lock", "totp"; keys are
strings chosen by the caller. Keys that must be touched together (a counter and its lock) are
given the same `kind` and a key prefix so the Redis backend can put them in one hash slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["Store", "StoreError", "StoreUnavailable"]


class StoreError(Exception):
    """Base class of store failures. Messages never contain values."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or did not answer in time. `cause` says why in a few
    fixed words an operator can act on ("connection refused", "timed out", "authentication
    failed"...), never a value or a server's text."""

    def __init__(self, message: str, *, cause: str = "not reachable") -> None:
        super().__init__(message)
        self.cause = cause


class Store(Protocol):
    # -- durable records and expiring values -------------------------------------------------
    async def get(self, kind: str, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def get_many(self, items: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """`get` of several (kind, key) pairs in one round trip (Redis: one pipeline), the
        values in the order asked. For a request that needs several records at once."""

    async def put(self, kind: str, key: str, value: bytes, ttl: float | None = None) -> None:
        """Write a value; with `ttl` (seconds) it expires. Durable once awaited."""

    async def put_if_absent(
        self, kind: str, key: str, value: bytes, ttl: float | None = None
    ) -> bool:
        """Write only if no live value exists. True if this call wrote it (atomic)."""

    async def compare_and_set(
        self,
        kind: str,
        key: str,
        expected: bytes | None,
        value: bytes | None,
        ttl: float | None = None,
    ) -> bool:
        """Atomically replace the value if it currently equals `expected` (None: absent).
        `value=None` deletes. True if the swap happened."""

    async def delete(self, kind: str, key: str) -> bool:
        """Remove a value. True if something was removed."""

    async def scan(self, kind: str, prefix: str = "") -> list[tuple[str, bytes]]:
        """All live (key, value) pairs of a kind whose key starts with `prefix`, key order."""

    # -- counters over a window --------------------------------------------------------------
    async def incr(self, kind: str, key: str, window: float, amount: int = 1) -> tuple[int, float]:
        """Atomically add `amount` and return (new value, seconds until the window ends).
        The window starts at the first increment of an absent counter and is not extended."""

    async def count(self, kind: str, key: str) -> tuple[int, float]:
        """(value, seconds left) of a counter; (0, 0.0) when absent or expired."""

    # -- per-owner indexes (e.g. a user's session ids) ---------------------------------------
    async def index_add(self, index: str, member: str) -> None: ...

    async def index_remove(self, index: str, member: str) -> None: ...

    async def index_members(self, index: str) -> list[str]: ...

    async def index_drop(self, index: str) -> None: ...

    # -- audit stream ------------------------------------------------------------------------
    async def audit_append(self, event: bytes) -> None:
        """Append one event; the stream is capped (oldest dropped first)."""

    async def audit_tail(self, n: int) -> list[bytes]:
        """The last `n` events, oldest first."""

    # -- lifecycle ---------------------------------------------------------------------------
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the backend answers."""

    async def close(self) -> None: ...
