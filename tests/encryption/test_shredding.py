"""Crypto-shredding: `gateway users delete` destroys the user's data keys, so ciphertext sealed
for that user is unreadable, also after a user of the same name is added again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.clock import SystemClock
from gateway.crypto import DecryptError
from gateway.crypto.datakeys import DataKeys, KeyNotFound
from gateway.crypto.keyring import Keyring, generate_kek
from gateway.crypto.token import open_field, seal_field
from gateway.store import open_store


def cli(conf: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", str(conf), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )


async def test_deleting_a_user_shreds_its_keys(tmp_path):
    kek = generate_kek()
    (tmp_path / "kek1").write_text(kek + "\n")
    conf = tmp_path / "gw.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "upstream": {"url": "http://127.0.0.1:9"},
                "store": {"url": f"sqlite:///{tmp_path}/gw.db"},
                "keys": {"active": "k1", "kek": {"k1": "file:kek1"}},
                "passwords": {"argon2": {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}},
            }
        )
    )
    password = "a long enough password\n"
    assert cli(conf, "users", "add", "alice", "--password-stdin", stdin=password).returncode == 0
    keyring = Keyring({"k1": __import__("base64").b64decode(kek)}, "k1")

    store = await open_store(f"sqlite:///{tmp_path}/gw.db", base_dir=tmp_path)
    try:
        version, key = await DataKeys(store, keyring, SystemClock()).active("user:alice")
        token = seal_field(key, "user:alice", version, b"my diagnosis")
    finally:
        await store.close()

    res = cli(conf, "users", "delete", "alice", "--yes")
    assert res.returncode == 0, res.stderr
    assert cli(conf, "users", "add", "alice", "--password-stdin", stdin=password).returncode == 0

    store = await open_store(f"sqlite:///{tmp_path}/gw.db", base_dir=tmp_path)
    try:
        keys = DataKeys(store, keyring, SystemClock())
        with pytest.raises(KeyNotFound):
            await keys.get("user:alice", version)
        new_version, new_key = await keys.active("user:alice")
        assert new_key != key
        with pytest.raises(DecryptError):
            open_field(new_key, "user:alice", new_version, token)
    finally:
        await store.close()
