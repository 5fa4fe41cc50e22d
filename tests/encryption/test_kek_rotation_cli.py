"""KEK rotation as an operator does it, with the real CLI in a subprocess: data sealed under
KEK A; config switched to active B with A still listed; `gateway keys rewrap`; A removed; the
old data still opens through the gateway. Removing A before the rewrap fails closed (502 with a
clear error, `keys rewrap` exits 1), never plaintext, never a 500."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from gateway.config import parse_config
from gateway.crypto.keyring import generate_kek
from tests.auth.conftest import FAST_ARGON2, AuthGw, launch
from tests.encryption.conftest import POLICY, Store
from tests.proxy.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "rotate me \u00e9"
BLOB = os.urandom(70_000) + b"BLOB-PLAINTEXT"


def write_config(tmp_path: Path, upstream: str, active: str, keks: list[str]) -> dict:
    for kek in ("A", "B"):
        path = tmp_path / f"kek-{kek}"
        if not path.exists():
            path.write_text(generate_kek() + "\n")
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "00-enc.yaml").write_text(POLICY)
    data = {
        "listen": f"127.0.0.1:{free_port()}",
        "upstream": {"url": upstream, "timeout": "5s", "connect_timeout": "1s"},
        "max_body": "1MiB",
        "store": {"url": f"sqlite:///{tmp_path}/gw.db"},
        "metrics": {"listen": None},
        "keys": {"active": active, "kek": {k: f"file:kek-{k}" for k in keks}},
        "passwords": FAST_ARGON2,
    }
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(data))
    return data


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args, "-c", str(tmp_path / "gateway.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )


async def running(tmp_path: Path, data: dict) -> AuthGw:
    config = parse_config(data, base_dir=tmp_path)
    return await launch(config)


async def seal_under_a(tmp_path: Path, store: Store) -> None:
    egw = await running(tmp_path, write_config(tmp_path, store.url, "A", ["A"]))
    try:
        await egw.add_user("alice")
        async with egw.client() as s:
            await egw.login(s, "alice")
            async with s.post(egw.url + "/form/n", data={"title": SECRET}) as r:
                assert r.status == 204
            async with s.post(egw.url + "/blob/b", data=BLOB) as r:
                assert r.status == 204
    finally:
        await egw.runner.cleanup()
    assert SECRET.encode() not in store.bodies["n"][1]
    assert b"BLOB-PLAINTEXT" not in store.bodies["b"][1]


async def test_rewrap_then_remove_old_kek(tmp_path: Path, store_upstream: Store) -> None:
    await seal_under_a(tmp_path, store_upstream)
    write_config(tmp_path, store_upstream.url, "B", ["A", "B"])
    status = cli(tmp_path, "keys", "status")
    assert status.returncode == 0, status.stderr
    assert "by kek: A=1; need rewrap: 1;" in status.stdout
    done = cli(tmp_path, "keys", "rewrap")
    assert done.returncode == 0, done.stderr
    assert "data keys: rewrapped 1;" in done.stdout
    again = cli(tmp_path, "keys", "rewrap")  # idempotent
    assert again.returncode == 0 and "rewrapped 0; already current 1" in again.stdout
    status = cli(tmp_path, "keys", "status")
    assert "by kek: B=1; need rewrap: 0;" in status.stdout
    kek_a = (tmp_path / "kek-A").read_text().strip()
    assert kek_a not in status.stdout + status.stderr + done.stdout + done.stderr

    egw = await running(tmp_path, write_config(tmp_path, store_upstream.url, "B", ["B"]))
    try:
        async with egw.client() as s:
            await egw.login(s, "alice")
            async with s.get(egw.url + "/form/n") as r:
                assert r.status == 200
                assert await r.text() == f"title={SECRET}"
            async with s.get(egw.url + "/blob/b") as r:
                assert r.status == 200
                assert await r.read() == BLOB
    finally:
        await egw.runner.cleanup()


async def test_old_kek_removed_before_rewrap_fails_closed(
    tmp_path: Path, store_upstream: Store
) -> None:
    await seal_under_a(tmp_path, store_upstream)
    write_config(tmp_path, store_upstream.url, "B", ["B"])
    done = cli(tmp_path, "keys", "rewrap")
    assert done.returncode == 1
    assert "could not be rewrapped" in done.stderr + done.stdout
    status = cli(tmp_path, "keys", "status")
    assert "unknown kek: 1" in status.stdout

    egw = await running(tmp_path, write_config(tmp_path, store_upstream.url, "B", ["B"]))
    try:
        async with egw.client() as s:
            await egw.login(s, "alice")
            async with s.get(egw.url + "/form/n") as r:
                assert r.status == 502
                assert await r.json() == {"error": "bad_gateway"}
            async with s.get(egw.url + "/blob/b") as r:
                assert r.status == 502
                body = await r.read()
                assert b"BLOB-PLAINTEXT" not in body and SECRET.encode() not in body
            hits = len(store_upstream.hits)
            # Sealing new data for this user fails closed too: nothing reaches the upstream.
            async with s.post(egw.url + "/form/new", data={"title": "fresh"}) as r:
                assert r.status == 502
            assert len(store_upstream.hits) == hits
    finally:
        await egw.runner.cleanup()
