"""The shared store: Redis standalone (redis://, rediss://), Sentinel and Cluster via redis-py.

Owns the key layout, the Lua scripts that make each multi-step operation one atomic round trip,
and the translation of every redis-py failure into `StoreUnavailable` / `StoreError`. It must
never put a value, a key or a password into an error message or a log line, and never imports
aiohttp.

Key layout (every key starts with `gw:`; the part in braces is the Cluster hash tag):

    gw:v:{KIND:SEG}REST   a value; the store key is SEG + REST, split at its first ":"
    gw:c:{KIND:SEG}REST   a window counter (INCRBY + PEXPIRE at the first increment)
    gw:i:{INDEX}          an index: a Redis set of member strings
    gw:audit              the audit stream: a list trimmed to `audit_cap` (RPUSH + LTRIM)

The tag is the kind plus the store key up to its first ":", so "lock"/"alice:fail" and
"lock"/"alice:until" (and the counter of the same name) share one slot, as base.py promises.
Every operation here touches a single key, so nothing depends on that yet, but multi-key
scripts written later can.

TTLs and windows are sent in milliseconds (PX / PEXPIRE), so fractional seconds work; expiry is
Redis's own. `scan()` runs SCAN with a MATCH pattern on every primary (redis-py does that for
RedisCluster), then reads the values with one pipeline: no per-kind index set to keep in step
with expiring keys, at the cost of walking the keyspace, which only admin listings do.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
from collections.abc import Awaitable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TimeoutError,
    TryAgainError,
)

from gateway.store.base import StoreError, StoreUnavailable
from gateway.store.checks import check_kind, check_ttl, check_window

__all__ = ["RedisStore", "connect_cluster", "connect_sentinel", "connect_url"]

CONNECT_TIMEOUT = 2.0
OP_TIMEOUT = 2.0
MAX_IN_FLIGHT = 64  # below redis-py's default pool size of 100 connections (per node)

# Errors that mean "the store is not reachable right now" (503), as opposed to a bug (500).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    ConnectionError,  # includes AuthenticationError, BusyLoadingError, MasterNotFoundError
    TimeoutError,
    ClusterDownError,
    ClusterError,
    TryAgainError,
    ReadOnlyError,  # writing to a demoted primary during a failover
    RedisClusterException,  # "cannot be connected" when no startup node answers
    OSError,
    asyncio.TimeoutError,
)


def _cause(exc: BaseException) -> str:
    """Why Redis was not reachable, in fixed words (redis-py's text is never passed on)."""
    if isinstance(exc, AuthenticationError):
        return "authentication failed (check the password or user in store.url)"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    seen: BaseException | None = exc
    while seen is not None:
        errno = getattr(seen, "errno", None)
        if errno == 111 or "refused" in str(seen).lower():
            return "connection refused (is redis-server running on that host and port?)"
        if errno in (-2, -3, -5) or "name or service not known" in str(seen).lower():
            return "host name not found"
        if "timeout" in str(seen).lower() or "timed out" in str(seen).lower():
            return "timed out"
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, ClusterDownError | ClusterError | RedisClusterException):
        return "the cluster is down or not reachable"
    if isinstance(exc, ReadOnlyError):
        return "the server is a read-only replica (failover in progress?)"
    return f"not reachable ({type(exc).__name__})"


_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {v, ttl}
"""

_COUNT = """
local v = redis.call('GET', KEYS[1])
if not v then return {0, 0} end
return {tonumber(v), redis.call('PTTL', KEYS[1])}
"""

# ARGV: has_expected, expected, has_value, value, ttl_ms ("0": no expiry)
_CAS = """
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[1])
elseif ARGV[5] == '0' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
end
return 1
"""

_AUDIT = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
"""

_AUDIT_KEY = "gw:audit"
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _tagged(kind: str, key: str) -> str:
    seg, sep, rest = key.partition(":")
    return "{" + kind + ":" + seg + "}" + sep + rest


def _untag(kind: str, raw: bytes, space: str) -> str | None:
    """The store key of a Redis key from `_tagged`, or None if it is not one of ours."""
    text = raw.decode("utf-8", "surrogateescape")
    head = f"gw:{space}:{{{kind}:"
    if not text.startswith(head):
        return None
    rest = text[len(head) :]
    colon = rest.find(":")
    end = len(rest) if colon == -1 else colon
    if end == 0 or rest[end - 1] != "}":
        return None
    return rest[: end - 1] + rest[end:]


def _value_key(kind: str, key: str) -> str:
    return "gw:v:" + _tagged(check_kind(kind), key)


def _counter_key(kind: str, key: str) -> str:
    return "gw:c:" + _tagged(check_kind(kind), key)


def _index_key(index: str) -> str:
    return "gw:i:{" + index + "}"


class RedisStore:
    """`Store` on a redis-py asyncio client (standalone, Sentinel master or Cluster)."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        audit_cap: int = 100_000,
        sentinel: Sentinel | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        if audit_cap < 1:
            raise ValueError("audit_cap must be at least 1")
        self._r = client
        # redis-py pools raise MaxConnectionsError when exhausted instead of waiting; a burst of
        # requests must queue here rather than turn into 503s.
        self._slots = asyncio.Semaphore(max_in_flight)
        self._sentinel = sentinel
        self._audit_cap = audit_cap
        self._incr = client.register_script(_INCR)
        self._count = client.register_script(_COUNT)
        self._cas = client.register_script(_CAS)
        self._audit = client.register_script(_AUDIT)
        # A Cluster client discovers its slots on first use; when a burst of first commands
        # races that discovery, redis-py resets connections under in-flight commands. So the
        # first command waits for one discovery, done under a lock.
        self._needs_init = isinstance(client, RedisCluster)
        self._init_lock = asyncio.Lock()

    async def _do(self, op: str, call: Awaitable[Any]) -> Any:
        # Any: redis-py types replies as bytes | str (decode_responses); ours are always bytes.
        try:
            await self._slots.acquire()
        except BaseException:
            if inspect.iscoroutine(call):
                call.close()  # cancelled while queued: the command was never sent
            raise
        try:
            if self._needs_init:
                async with self._init_lock:
                    if self._needs_init:
                        await self._r.initialize()  # type: ignore[union-attr]
                        self._needs_init = False
            return await call
        except _UNAVAILABLE as exc:
            # The class name says what happened; redis-py's text may quote the command.
            raise StoreUnavailable(
                f"redis {op} failed: {type(exc).__name__}", cause=_cause(exc)
            ) from None
        except RedisError as exc:
            raise StoreError(f"redis {op} failed: {type(exc).__name__}") from None
        finally:
            self._slots.release()

    # -- values --------------------------------------------------------------------------------
    async def get(self, kind: str, key: str) -> bytes | None:
        value: bytes | None = await self._do("get", self._r.get(_value_key(kind, key)))
        return value

    async def get_many(self, items: Sequence[tuple[str, str]]) -> list[bytes | None]:
        keys = [_value_key(kind, key) for kind, key in items]
        if not keys:
            return []
        if not self._needs_init and not isinstance(self._r, RedisCluster):
            # One MGET: one round trip, and far less client work than a pipeline of GETs (it
            # is on the path of every authenticated request).
            return list(await self._do("get_many", self._r.mget(keys)))
        # Cluster: the keys live in different slots; a plain pipeline is one round trip per node.
        pipe = self._r.pipeline(transaction=False)
        for name in keys:
            pipe.get(name)
        values = await self._do("get_many", pipe.execute())
        return list(values)

    async def put(self, kind: str, key: str, value: bytes, ttl: float | None = None) -> None:
        ttl = check_ttl(ttl)
        px = None if ttl is None else _ms(ttl)
        await self._do("put", self._r.set(_value_key(kind, key), bytes(value), px=px))

    async def put_if_absent(
        self, kind: str, key: str, value: bytes, ttl: float | None = None
    ) -> bool:
        ttl = check_ttl(ttl)
        px = None if ttl is None else _ms(ttl)
        done = await self._do(
            "put_if_absent", self._r.set(_value_key(kind, key), bytes(value), px=px, nx=True)
        )
        return bool(done)

    async def compare_and_set(
        self,
        kind: str,
        key: str,
        expected: bytes | None,
        value: bytes | None,
        ttl: float | None = None,
    ) -> bool:
        ttl = check_ttl(ttl)
        args = [
            "0" if expected is None else "1",
            b"" if expected is None else bytes(expected),
            "0" if value is None else "1",
            b"" if value is None else bytes(value),
            0 if ttl is None else _ms(ttl),
        ]
        done = await self._do("compare_and_set", self._cas(keys=[_value_key(kind, key)], args=args))
        return bool(done)

    async def delete(self, kind: str, key: str) -> bool:
        removed = await self._do("delete", self._r.delete(_value_key(kind, key)))
        return bool(removed)

    async def scan(self, kind: str, prefix: str = "") -> list[tuple[str, bytes]]:
        check_kind(kind)
        tagged = _tagged(kind, prefix)[1:] if ":" in prefix else f"{kind}:{prefix}"
        pattern = "gw:v:{" + _GLOB_SPECIAL.sub(r"\\\1", tagged) + "*"

        async def work() -> list[tuple[str, bytes]]:
            raw_keys = {k async for k in self._r.scan_iter(match=pattern, count=1000)}
            wanted = {}
            for raw in raw_keys:
                key = _untag(kind, raw, "v")
                if key is not None and key.startswith(prefix):
                    wanted[key] = raw
            if not wanted:
                return []
            names = sorted(wanted)
            pipe = self._r.pipeline(transaction=False)
            for name in names:
                pipe.get(wanted[name])
            values = await pipe.execute()
            # A key that expired between SCAN and GET reads as None and is left out.
            return [(n, v) for n, v in zip(names, values, strict=True) if v is not None]

        found: list[tuple[str, bytes]] = await self._do("scan", work())
        return found

    # -- counters ------------------------------------------------------------------------------
    async def incr(self, kind: str, key: str, window: float, amount: int = 1) -> tuple[int, float]:
        window = check_window(window)
        value, ttl_ms = await self._do(
            "incr",
            self._incr(keys=[_counter_key(kind, key)], args=[int(amount), _ms(window)]),
        )
        return int(value), max(0, int(ttl_ms)) / 1000.0

    async def count(self, kind: str, key: str) -> tuple[int, float]:
        value, ttl_ms = await self._do("count", self._count(keys=[_counter_key(kind, key)]))
        if int(ttl_ms) <= 0:
            return 0, 0.0
        return int(value), int(ttl_ms) / 1000.0

    # -- indexes -------------------------------------------------------------------------------
    async def index_add(self, index: str, member: str) -> None:
        await self._do("index_add", self._r.sadd(_index_key(index), member))

    async def index_remove(self, index: str, member: str) -> None:
        await self._do("index_remove", self._r.srem(_index_key(index), member))

    async def index_members(self, index: str) -> list[str]:
        members = await self._do("index_members", self._r.smembers(_index_key(index)))
        return sorted(bytes(m).decode("utf-8", "surrogateescape") for m in members)

    async def index_drop(self, index: str) -> None:
        await self._do("index_drop", self._r.delete(_index_key(index)))

    # -- audit ---------------------------------------------------------------------------------
    async def audit_append(self, event: bytes) -> None:
        await self._do(
            "audit_append",
            self._audit(keys=[_AUDIT_KEY], args=[bytes(event), self._audit_cap]),
        )

    async def audit_tail(self, n: int) -> list[bytes]:
        if n <= 0:
            return []
        events: list[bytes] = await self._do("audit_tail", self._r.lrange(_AUDIT_KEY, -n, -1))
        return events

    # -- lifecycle -----------------------------------------------------------------------------
    async def ping(self) -> None:
        await self._do("ping", self._r.ping())

    async def close(self) -> None:
        await self._r.aclose()
        if self._sentinel is not None:
            for client in self._sentinel.sentinels:
                await client.aclose()


def _client_options(connect_timeout: float, op_timeout: float) -> dict[str, Any]:
    # One quick retry re-dials a pooled connection the server dropped (restart, failover);
    # more would only make an outage slower to report.
    return {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": op_timeout,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
        "decode_responses": False,
    }


def connect_url(
    url: str,
    *,
    audit_cap: int = 100_000,
    connect_timeout: float = CONNECT_TIMEOUT,
    op_timeout: float = OP_TIMEOUT,
) -> RedisStore:
    """A store on redis:// or rediss://. TLS verifies the certificate and host name against
    the system CAs unless the URL's `ssl_*` query options say otherwise."""
    options = _client_options(connect_timeout, op_timeout)
    return RedisStore(Redis.from_url(url, **options), audit_cap=audit_cap)


def connect_sentinel(
    sentinels: tuple[tuple[str, int], ...],
    service: str,
    *,
    db: int = 0,
    username: str | None = None,
    password: str | None = None,
    audit_cap: int = 100_000,
    connect_timeout: float = CONNECT_TIMEOUT,
    op_timeout: float = OP_TIMEOUT,
) -> RedisStore:
    """A store on the current master of `service`; the pool asks the sentinels again on every
    new connection, so a failover is followed without a restart. Credentials go to the master
    only (sentinels usually run without AUTH)."""
    timeouts = _client_options(connect_timeout, op_timeout)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(sentinels), sentinel_kwargs=dict(timeouts), **timeouts
    )
    client = sentinel.master_for(service, db=db, username=username, password=password)
    return RedisStore(client, audit_cap=audit_cap, sentinel=sentinel)


def connect_cluster(
    nodes: tuple[tuple[str, int], ...],
    *,
    username: str | None = None,
    password: str | None = None,
    audit_cap: int = 100_000,
    connect_timeout: float = CONNECT_TIMEOUT,
    op_timeout: float = OP_TIMEOUT,
) -> RedisStore:
    """A store on a Redis Cluster reached through any of `nodes`; slots are discovered lazily
    on the first command and refreshed when the topology changes."""
    options = _client_options(connect_timeout, op_timeout)
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        username=username,
        password=password,
        **options,
    )
    return RedisStore(client, audit_cap=audit_cap)
