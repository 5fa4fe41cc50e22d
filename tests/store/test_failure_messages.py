"""What an operator reads when the CLI cannot use the store: which store (its URL without the
password) and why, in words to act on: refused, wrong password, a SQLite file that cannot open."""

from __future__ import annotations

import pytest

from tests.config.test_config import cli
from tests.support.redis import RedisServer, free_port

SECRET = "s3cret-Redis-pass"


def _conf(tmp_path, url: str):
    path = tmp_path / "gateway.yaml"
    path.write_text(f"upstream: {{url: 'http://127.0.0.1:9'}}\nstore: {{url: '{url}'}}\n")
    return path


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis-auth"), password="the-right-one") as server:
        yield server


@pytest.mark.parametrize("verb", [("users", "list"), ("sessions", "list"), ("audit", "tail")])
def test_a_refused_connection_names_the_store_and_the_cause(tmp_path, verb):
    port = free_port()
    done = cli(*verb, "-c", str(_conf(tmp_path, f"redis://:{SECRET}@127.0.0.1:{port}/0")))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"gateway: store at redis://:***@127.0.0.1:{port}/0 is unreachable: connection refused"
        " (is redis-server running on that host and port?)"
    )
    assert SECRET not in done.stderr + done.stdout


def test_a_wrong_password_says_authentication_failed(tmp_path, locked_redis):
    url = f"redis://:{SECRET}@127.0.0.1:{locked_redis.port}/0"
    done = cli("users", "list", "-c", str(_conf(tmp_path, url)))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"gateway: store at redis://:***@127.0.0.1:{locked_redis.port}/0 is unreachable:"
        " authentication failed (check the password or user in store.url)"
    )
    assert SECRET not in done.stderr


def test_a_sqlite_file_that_cannot_be_opened_says_so(tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the database folder should be")
    done = cli("users", "list", "-c", str(_conf(tmp_path, f"sqlite:///{blocked}/gw.db")))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"gateway: store at sqlite:///{blocked}/gw.db is unreachable: the database file cannot"
        " be created or opened (File exists)"
    )
