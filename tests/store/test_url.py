"""store.url parsing: every documented shape is accepted, every bad one is refused with a
message that says what was expected and never shows the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store import open_store
from gateway.store.sqlite import SQLiteStore
from gateway.store.url import (
    ClusterTarget,
    RedisTarget,
    SentinelTarget,
    SQLiteTarget,
    parse_store_url,
    redact_url,
)

BASE = Path("/etc/gateway")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/gateway.db", SQLiteTarget(BASE / "var/gateway.db")),
        ("sqlite:///gateway.db", SQLiteTarget(BASE / "gateway.db")),
        ("sqlite:////srv/state/gw.db", SQLiteTarget(Path("/srv/state/gw.db"))),
        ("redis://127.0.0.1:6379/0", RedisTarget("redis://127.0.0.1:6379/0")),
        ("redis://:pw@redis.internal", RedisTarget("redis://:pw@redis.internal")),
        (
            "rediss://user:pw@redis.internal:6380/2",
            RedisTarget("rediss://user:pw@redis.internal:6380/2"),
        ),
        (
            "redis+sentinel://s1:26379,s2:26380/mymaster",
            SentinelTarget((("s1", 26379), ("s2", 26380)), "mymaster"),
        ),
        (
            "redis+sentinel://:pw@[::1]:26379/gw?db=3",
            SentinelTarget((("::1", 26379),), "gw", 3, None, "pw"),
        ),
        ("redis+cluster://n1:7000", ClusterTarget((("n1", 7000),))),
        (
            "redis+cluster://app:pw@n1:7000,n2:7001/",
            ClusterTarget((("n1", 7000), ("n2", 7001)), "app", "pw"),
        ),
    ],
)
def test_store_url_shapes_are_accepted(url: str, expected: object) -> None:
    assert parse_store_url(url, base_dir=BASE) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "not a URL"),
        ("gateway.db", "not a URL"),
        ("postgres://u:topsecret@db/gw", "unknown scheme"),
        ("sqlite://", "empty host and a path"),
        ("sqlite:///", "names no file"),
        ("sqlite:///state/", "names no file"),
        ("redis://:topsecret@host:notaport/0", "invalid host or port"),
        ("redis://:topsecret@host:6379/zero", "database number"),
        ("redis://", "names no host"),
        ("redis+sentinel://:topsecret@s1:26379", "monitored service"),
        ("redis+sentinel://s1/mymaster", "host:port"),
        ("redis+sentinel://s1:26379/mymaster?password=topsecret", "unknown query"),
        ("redis+sentinel://s1:26379/mymaster?db=x", "database number"),
        ("redis+cluster://u:topsecret@n1:7000/1", "no path"),
        ("redis+cluster://n1:0", "host:port"),
    ],
)
def test_bad_store_url_names_what_was_expected_and_hides_the_password(
    url: str, reason: str
) -> None:
    with pytest.raises(ValueError) as err:
        parse_store_url(url, base_dir=BASE)
    message = str(err.value)
    assert reason in message
    assert "redis+sentinel://host:26379" in message  # the expected shapes are listed
    assert "topsecret" not in message


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("rediss://app:pa:ss@h:6380/0") == "rediss://app:***@h:6380/0"
    assert redact_url("redis://h:6379") == "redis://h:6379"
    assert redact_url("redis://h/0?db=1&password=x") == "redis://h/0?db=1&password=***"


async def test_open_store_resolves_sqlite_paths_against_the_config_folder(
    tmp_path: Path,
) -> None:
    store = await open_store("sqlite:///state/gw.db", base_dir=tmp_path)
    try:
        assert isinstance(store, SQLiteStore)
        await store.put("user", "alice", b"x")
        assert (tmp_path / "state" / "gw.db").stat().st_mode & 0o777 == 0o600
    finally:
        await store.close()
