"""Redis outage: fail fast and closed with StoreUnavailable, recover without a new Store, and
never leak a password into the error."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.store import StoreError, StoreUnavailable, open_store
from tests.store.conftest import Backend
from tests.support.redis import RedisServer

REDIS_BACKENDS = ["redis", "redis-cluster", "redis-sentinel"]


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_stopped_redis_raises_unavailable_then_same_store_recovers(
    backend: Backend,
) -> None:
    s = backend.store
    await s.put("session", "sid", b"alive")
    backend.stop_servers()
    started = time.monotonic()
    ops = (
        s.get("session", "sid"),
        s.get_many([("session", "sid"), ("user", "alice")]),
        s.incr("lock", "fail:alice", 60),
        s.ping(),
    )
    for op in ops:
        with pytest.raises(StoreUnavailable):
            await op
    assert time.monotonic() - started < 10  # fails fast, a request does not hang
    backend.start_servers()
    assert await s.get("session", "sid") == b"alive"
    assert await s.get_many([("session", "sid"), ("user", "alice")]) == [b"alive", None]
    assert await s.incr("lock", "fail:alice", 60) == (1, pytest.approx(60, abs=1))
    await s.ping()


async def test_unavailable_message_never_contains_the_password(tmp_path: Path) -> None:
    password = "hunter2-very-secret"
    with RedisServer(tmp_path / "auth", password=password) as server:
        good = await open_store(server.url, base_dir=tmp_path)
        wrong = await open_store(server.url.replace(password, "not-it"), base_dir=tmp_path)
        try:
            await good.put("user", "alice", b"secret-value")
            with pytest.raises(StoreUnavailable) as refused:
                await wrong.get("user", "alice")
            server.stop()
            with pytest.raises(StoreUnavailable) as down:
                await good.get("user", "alice")
        finally:
            await good.close()
            await wrong.close()
    for err in (refused.value, down.value):
        assert password not in str(err) and "not-it" not in str(err)
        assert "secret-value" not in str(err) and "alice" not in str(err)
        assert err.__cause__ is None and err.__suppress_context__


async def test_corrupt_counter_is_a_store_error_not_an_outage(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    with redis_server.client() as admin:
        admin.set("gw:c:{lock:alice}", b"not-a-number")  # the layout of gateway/store/redis.py
    store = await open_store(redis_url, base_dir=tmp_path)
    try:
        with pytest.raises(StoreError) as err:
            await store.incr("lock", "alice", 60)
        assert not isinstance(err.value, StoreUnavailable)
        assert "not-a-number" not in str(err.value)
    finally:
        await store.close()
