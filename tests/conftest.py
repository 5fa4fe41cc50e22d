"""Shared fixtures: real redis-server processes, started once per session, emptied per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gateway.crypto.keyring import generate_kek
from tests.support.redis import RedisCluster, RedisSentinel, RedisServer

# The default config reads its KEK from GATEWAY_KEK; start-up fails closed without one.
os.environ.setdefault("GATEWAY_KEK", generate_kek())


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, running (a test may have stopped it) and empty."""
    redis_server.start()
    redis_server.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    redis_cluster.start()
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    with RedisSentinel(tmp_path_factory.mktemp("redis-sentinel")) as sentinel:
        yield sentinel


@pytest.fixture
def redis_sentinel_url(redis_sentinel: RedisSentinel) -> str:
    redis_sentinel.start()
    redis_sentinel.master.flushall()
    return redis_sentinel.url
