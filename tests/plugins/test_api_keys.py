"""api_keys end to end: a key made by `gateway apikeys create` (a separate process, the same
store) opens routes by its roles, never an `mfa` rule; wrong, tampered and revoked keys get
401 and reach nothing; the upstream never sees the key; the store never holds it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from dataclasses import dataclass

import pytest

from gateway.cli import main
from tests.plugins.test_loading import gateway_cli

USE = "plugins.api_keys"
JSON = {"Accept": "application/json"}


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):
    """`gateway ...` in this process (in a thread: it runs its own event loop), against
    the config file written beside the running gateway. One test uses a real subprocess."""

    async def run(gw, *argv: str, subprocess: bool = False) -> Done:
        argv = (*argv, "-c", str(gw.config_file))
        if subprocess:
            done = gateway_cli(*argv, cwd=gw.config_file.parent)
            return Done(done.returncode, done.stdout, done.stderr)
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        out = capsys.readouterr()
        return Done(code, out.out, out.err)

    return run


async def create(cli, gw, name: str, *roles: str, subprocess: bool = False) -> str:
    args = ["apikeys", "create", name]
    for role in roles:
        args += ["--role", role]
    done = await cli(gw, *args, subprocess=subprocess)
    assert done.returncode == 0, done.stderr
    key = done.stdout.splitlines()[0]
    assert key.startswith("gwk_") and "shown only this once" in done.stdout
    return key


async def call(gw, path: str, key: str | None, **headers: str):
    headers = {**JSON, **headers}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with gw.client() as s, s.get(gw.url + path, headers=headers) as r:
        return r.status, await r.json()


@pytest.fixture
async def keyed(plugin_gateway):
    return await plugin_gateway([{"use": USE}])


async def test_a_created_key_opens_routes_by_its_roles(cli, keyed, recorder):
    key = await create(cli, keyed, "deployer", "admin", "ci", subprocess=True)
    assert await call(keyed, "/private/x", key) == (200, {"path": "/private/x"})
    assert await call(keyed, "/admin/x", key) == (200, {"path": "/admin/x"})
    seen = recorder.seen[-1]["headers"]
    assert seen["X-Forwarded-User"] == "apikey:deployer"
    assert seen["X-Forwarded-Groups"] == "admin,ci"
    # SECURITY: the key is the gateway's credential; the upstream never receives it
    assert "Authorization" not in seen and key not in repr(recorder.seen)


async def test_roles_are_enforced_and_mfa_rules_stay_closed(cli, keyed, recorder):
    key = await create(cli, keyed, "reader", "viewer")
    assert await call(keyed, "/admin/x", key) == (403, {"error": "forbidden"})
    # a key has no second factor: the gateway's answer for a caller never enrolled in MFA
    assert await call(keyed, "/secure/x", key) == (
        401,
        {"error": "mfa_required", "enrollment_required": True},
    )
    assert recorder.seen == []


def tamper(key: str) -> str:
    last = "A" if key[-1] != "A" else "B"
    return key[:-1] + last


async def test_wrong_keys_get_401_and_reach_nothing(cli, keyed, recorder):
    key = await create(cli, keyed, "bot", "admin")
    key_id = key.split("_")[1]
    bad = [
        tamper(key),  # right id, wrong secret
        "gwk_" + "0" * 16 + key[4 + 16 :],  # unknown id, a real secret
        "gwk_" + key_id + "_short",
        "not-a-gateway-key",
        "",
    ]
    for token in bad:
        assert await call(keyed, "/private/x", token) == (401, {"error": "invalid_api_key"})
        # a wrong key is refused on public routes too: it never degrades to anonymous
        assert await call(keyed, "/open/x", token) == (401, {"error": "invalid_api_key"})
    assert recorder.seen == []


async def test_two_authorization_headers_are_refused(cli, keyed, recorder):
    key = await create(cli, keyed, "dup", "admin")
    async with keyed.client() as s:
        headers = [("Authorization", f"Bearer {key}"), ("Authorization", "Basic eDp5"),
                   ("Accept", "application/json")]  # fmt: skip
        async with s.get(keyed.url + "/private/x", headers=headers) as r:
            assert r.status == 401
    assert recorder.seen == []


async def test_a_revoked_key_is_refused_at_once(cli, keyed, recorder):
    key = await create(cli, keyed, "temp", "admin")
    assert (await call(keyed, "/private/x", key))[0] == 200
    done = await cli(keyed, "apikeys", "revoke", "temp", subprocess=True)
    assert done.returncode == 0 and "revoked temp" in done.stdout
    assert await call(keyed, "/private/x", key) == (401, {"error": "invalid_api_key"})
    assert len(recorder.seen) == 1
    again = await cli(keyed, "apikeys", "revoke", "temp")
    assert again.returncode == 1 and "no API key named temp" in again.stderr


async def test_list_shows_names_and_roles_and_never_a_secret(cli, keyed, tmp_path):
    key = await create(cli, keyed, "lister", "ops")
    assert (await call(keyed, "/private/x", key))[0] == 200  # records last use
    done = await cli(keyed, "apikeys", "list")
    assert done.returncode == 0
    header, row = done.stdout.splitlines()
    assert header.split() == ["NAME", "ROLES", "CREATED", "LAST", "USED"]
    assert row.split()[:2] == ["lister", "ops"] and "never" not in row and row.count("UTC") == 2
    as_json = await cli(keyed, "apikeys", "list", "--json")
    (listed,) = json.loads(as_json.stdout)
    assert (listed["name"], listed["roles"]) == ("lister", ["ops"]) and listed["last_used"]
    secret = key.split("_", 2)[2]
    assert secret not in done.stdout and key not in done.stdout
    # the store holds only the SHA-256 of the secret
    raw = b"".join(
        bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode()
        for row in sqlite3.connect(tmp_path / "gw.db").execute("SELECT * FROM kv")
        for v in row
    )
    assert secret.encode() not in raw and key.encode() not in raw
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in raw


async def test_duplicate_names_and_bad_roles_are_refused(cli, keyed):
    await create(cli, keyed, "once")
    done = await cli(keyed, "apikeys", "create", "once")
    assert done.returncode == 1 and "exists already" in done.stderr
    done = await cli(keyed, "apikeys", "create", "x", "--role", "a,b")
    assert done.returncode == 1 and "invalid role" in done.stderr


async def test_a_session_and_other_bearer_tokens_pass_when_configured(plugin_gateway, recorder):
    gw = await plugin_gateway([{"use": USE, "with": {"other_bearer_tokens": "pass"}}])
    status, _ = await call(gw, "/open/x", "upstream-own-token")
    assert status == 200
    assert recorder.seen[-1]["headers"]["Authorization"] == "Bearer upstream-own-token"
    assert await call(gw, "/private/x", "upstream-own-token") == (
        401,
        {"error": "authentication_required"},
    )


def test_the_apikeys_verb_exists_only_with_the_plugin(tmp_path, capsys):
    (tmp_path / "gateway.yaml").write_text("upstream: {url: 'http://127.0.0.1:9'}\n")
    with pytest.raises(SystemExit) as info:
        main(["apikeys", "list", "-c", str(tmp_path / "gateway.yaml")])
    # A usage error: exit 1 (exit 2 is for missing or malformed key material).
    err = capsys.readouterr().err
    assert info.value.code == 1 and "add `- use: plugins.api_keys` under `plugins:`" in err


async def test_with_a_session_the_key_is_ignored_and_still_stripped(cli, keyed, recorder):
    from tests.auth.conftest import PASSWORD

    key = await create(cli, keyed, "robot", "admin")
    await keyed.gw.services["auth"].users.add("alice", PASSWORD, roles=["staff"])
    async with keyed.client() as s:
        await keyed.login(s)
        headers = {**JSON, "Authorization": f"Bearer {key}"}
        async with s.get(keyed.url + "/admin/x", headers=headers) as r:
            assert r.status == 403  # alice's session decides: she is not admin
        async with s.get(keyed.url + "/private/x", headers=headers) as r:
            assert r.status == 200
    seen = recorder.seen[-1]["headers"]
    assert seen["X-Forwarded-User"] == "alice" and "Authorization" not in seen


async def test_a_store_outage_fails_a_keyed_request_closed(cli, keyed, recorder, tmp_path):
    key = await create(cli, keyed, "outage", "admin")
    store = keyed.gw.services["store"]
    await store.close()  # the store is gone for this worker
    assert (await call(keyed, "/private/x", key))[0] == 503
    assert recorder.seen == []


async def test_scheme_is_case_insensitive_and_the_key_exact(cli, keyed, recorder):
    key = await create(cli, keyed, "casing", "admin")
    async with keyed.client() as s:
        for value, status in [
            (f"bearer {key}", 200),
            (f"BEARER   {key}  ", 200),
            (f"Bearer {key.upper()}", 401),  # ids and secrets are case-sensitive
            (f"Bearer {key}x", 401),
            (f"Bearer {key[:-1]}", 401),
        ]:
            headers = {**JSON, "Authorization": value}
            async with s.get(keyed.url + "/private/x", headers=headers) as r:
                assert r.status == status, value
    assert len(recorder.seen) == 2
    assert all("Authorization" not in seen["headers"] for seen in recorder.seen)


async def test_last_use_is_never_written_back_over_a_revoke(cli, keyed):
    from plugins.api_keys import KIND

    key = await create(cli, keyed, "racer", "admin")
    hooks = keyed.gw.services["plugins"]
    plugin = hooks.plugins[0].instance
    key_id, record, raw = await plugin.keys.verify(key)
    assert await plugin.keys.revoke("racer")
    await plugin._touch(key_id, record, raw)  # a request that verified just before the revoke
    assert await keyed.gw.services["store"].get(KIND, key_id) is None
    assert await plugin.keys.verify(key) is None
