"""breached_passwords: passwords in the shipped k-anonymity range list are refused on
/.gateway/password and by `gateway users add`; the optional online range API is asked with
the 5-character prefix only, and when it cannot answer the password is refused by default."""

from __future__ import annotations

import asyncio
import hashlib
import io
import sys
from pathlib import Path

import pytest
from aiohttp import web

from gateway.cli import main
from plugins.breached_passwords import range_lookup
from tests.auth.conftest import PASSWORD
from tests.proxy.conftest import free_port
from tests.support.upstream import serve

USE = "plugins.breached_passwords"
DATA = Path(__file__).resolve().parents[2] / "plugins" / "breached_passwords_data"
BREACHED = "password123456"
FRESH = "a never breached passphrase"


def sha1(password: str) -> str:
    return hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()


def test_the_shipped_list_has_the_known_passwords_in_range_format():
    digest = sha1(BREACHED)
    text = (DATA / digest[:5]).read_text()
    assert range_lookup(text, digest[5:]) > 0
    assert range_lookup(text, sha1(FRESH)[5:]) == 0
    for line in text.splitlines():
        suffix, _, count = line.partition(":")
        assert len(suffix) == 35 and int(count) > 0


@pytest.mark.parametrize(
    ("text", "count"),
    [("ABC:3\r\n", 3), ("abc:7", 7), ("ABD:3", 0), ("ABC:0", 0), ("", 0), ("ABC", 1)],
)
def test_range_lookup_table(text, count):
    assert range_lookup(text, "ABC") == count


async def test_password_endpoint_refuses_a_breached_password(plugin_gateway):
    gw = await plugin_gateway([{"use": USE, "with": {"path": str(DATA)}}])
    await gw.gw.services["auth"].users.add("alice", PASSWORD)
    async with gw.client() as s:
        await gw.login(s)
        body = {"current_password": PASSWORD, "new_password": BREACHED}
        async with s.post(gw.url + "/.gateway/password", json=body) as r:
            assert r.status == 400
            assert await r.json() == {"error": "password_rejected", "reason": "breached"}
        body["new_password"] = FRESH
        async with s.post(gw.url + "/.gateway/password", json=body) as r:
            assert r.status == 200


def test_users_add_and_passwd_refuse_a_breached_password(tmp_path, monkeypatch, capsys):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "upstream: {url: 'http://127.0.0.1:9'}\n"
        "store: {url: 'sqlite:///gw.db'}\n"
        "passwords: {argon2: {time_cost: 1, memory_cost: 1024}}\n"
        f"plugins: [{{use: {USE}, with: {{path: '{DATA}'}}}}]\n"
    )
    monkeypatch.setenv("GATEWAY_CONFIG", str(path))
    for password, code in ((BREACHED, 1), (FRESH, 0)):
        monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
        assert main(["users", "add", "erin", "--password-stdin"]) == code
        out = capsys.readouterr()
        assert password not in out.out + out.err
        if code:
            assert "password rejected: breached" in out.err
    monkeypatch.setattr(sys, "stdin", io.StringIO(BREACHED + "\n"))
    assert main(["users", "passwd", "erin", "--password-stdin"]) == 1
    assert "password rejected: breached" in capsys.readouterr().err


@pytest.fixture
async def range_api():
    """A real HTTP range API serving the shipped list; `delay` makes it slow."""
    state = {"paths": [], "delay": 0.0}

    async def handler(request: web.Request) -> web.StreamResponse:
        state["paths"].append(request.path)
        await asyncio.sleep(state["delay"])
        if state.get("flood"):
            return web.Response(body=b"0" * (2 << 20))
        if state.get("status"):
            return web.Response(status=state["status"])
        prefix = request.match_info["prefix"]
        file = DATA / prefix
        body = file.read_text() if file.exists() else ""
        return web.Response(text=body + "0000000000000000000000000000000000A:0\r\n")

    app = web.Application()
    app.router.add_get("/range/{prefix}", handler)
    runner, url = await serve(app)
    state["url"] = url + "/range/"
    yield state
    await runner.cleanup()


async def add(gw, name: str, password: str) -> str | None:
    try:
        await gw.gw.services["auth"].users.add(name, password)
    except ValueError as exc:
        return str(exc)
    return None


async def test_online_range_api_gets_only_the_prefix(plugin_gateway, range_api):
    gw = await plugin_gateway([{"use": USE, "with": {"api_url": range_api["url"]}}])
    assert await add(gw, "a", BREACHED) == "password rejected: breached"
    assert await add(gw, "b", FRESH) is None
    assert range_api["paths"] == [f"/range/{sha1(BREACHED)[:5]}", f"/range/{sha1(FRESH)[:5]}"]


@pytest.mark.parametrize(("on_error", "outcome"), [("reject", "rejected"), ("accept", None)])
async def test_an_unanswering_range_api_fails_as_configured(
    plugin_gateway, range_api, on_error, outcome
):
    range_api["delay"] = 0.8
    options = {"api_url": range_api["url"], "timeout": "200ms", "on_error": on_error}
    gw = await plugin_gateway([{"use": USE, "with": options}])
    got = await add(gw, "c", FRESH)
    if outcome is None:
        assert got is None
    else:
        assert got == "password rejected: password_check_failed"


async def test_a_refused_range_api_connection_fails_closed(plugin_gateway):
    url = f"http://127.0.0.1:{free_port()}/range/"  # nothing listens there
    gw = await plugin_gateway([{"use": USE, "with": {"api_url": url}}])
    assert await add(gw, "d", FRESH) == "password rejected: password_check_failed"


async def test_the_offline_list_answers_before_the_api_is_asked(plugin_gateway, range_api):
    options = {"path": str(DATA), "api_url": range_api["url"]}
    gw = await plugin_gateway([{"use": USE, "with": options}])
    assert await add(gw, "e", BREACHED) == "password rejected: breached"
    assert range_api["paths"] == []


@pytest.mark.parametrize("misbehaviour", [{"flood": True}, {"status": 500}, {"status": 429}])
async def test_a_misbehaving_range_api_fails_closed(plugin_gateway, range_api, misbehaviour):
    range_api.update(misbehaviour)
    gw = await plugin_gateway([{"use": USE, "with": {"api_url": range_api["url"]}}])
    assert await add(gw, "f", FRESH) == "password rejected: password_check_failed"
