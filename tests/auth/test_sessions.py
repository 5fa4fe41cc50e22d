"""Sessions as an attacker and an operator see them: expiry, garbage cookies, identity headers,
changes that must show on the very next request, logout, revocation and password change."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.auth.conftest import PASSWORD, forwarded

ME = "/.gateway/api/me"


async def status_of(s, url: str) -> int:
    async with s.get(url) as r:
        await r.read()
        return r.status


async def test_identity_headers_reach_upstream_and_spoofed_ones_never(agw):
    await agw.add_user("alice", roles=["admin", "ops"])
    spoof = {"X-Forwarded-User": "root", "X-Forwarded-Groups": "admin", "X_Forwarded_Email": "x"}
    async with agw.client() as anon, anon.get(agw.url + "/page", headers=spoof) as r:
        assert forwarded(await r.json()) == {}
    async with agw.client() as s:
        await agw.login(s)
        async with s.get(agw.url + "/page", headers=spoof) as r:
            body = await r.json()
    assert forwarded(body) == {
        "X-Forwarded-User": "alice",
        "X-Forwarded-Email": "alice@example.org",
        "X-Forwarded-Groups": "admin,ops",
    }
    assert all(
        k.lower().replace("_", "-") != "x-forwarded-email" or v != "x" for k, v in body["headers"]
    )
    cookies = [v for k, v in body["headers"] if k.lower() == "cookie"]
    assert not any("gateway_session" in c for c in cookies)


async def test_user_without_email_or_roles_gets_no_empty_identity_headers(agw):
    await agw.add_user("dave", email="", roles=[])
    spoof = {
        "X-Forwarded-Email": "boss@example.org",
        "X-Forwarded-Groups": "admin",
        "X_Forwarded_Groups": "admin",
    }
    async with agw.client() as s:
        await agw.login(s, "dave")
        async with s.get(agw.url + "/page", headers=spoof) as r:
            body = await r.json()
        async with s.get(agw.url + ME) as r:
            me = await r.json()
    # Omitted, not sent empty; and the client's copies are still stripped.
    assert forwarded(body) == {"X-Forwarded-User": "dave"}
    folded = {k.lower().replace("_", "-") for k, _ in body["headers"]}
    assert not folded & {"x-forwarded-email", "x-forwarded-groups"}
    # DESIGN 5 shape: no email is null, never "".
    assert me == {
        "user": "dave",
        "email": None,
        "roles": [],
        "mfa_enabled": False,
        "auth_level": "password",
    }


async def test_idle_timeout_ends_the_session(agw):
    await agw.add_user()
    async with agw.client() as s:
        await agw.login(s)
        agw.clock.advance(29 * 60)
        assert await status_of(s, agw.url + ME) == 200  # refreshes last_seen
        agw.clock.advance(29 * 60)
        assert await status_of(s, agw.url + ME) == 200
        agw.clock.advance(30 * 60 + 1)
        assert await status_of(s, agw.url + ME) == 401


async def test_idle_refresh_is_written_at_most_once_a_minute(agw):
    await agw.add_user()
    async with agw.client() as s:
        await agw.login(s)
        [(key, first)] = await agw.auth.sessions.store.scan("session")
        agw.clock.advance(30)
        assert await status_of(s, agw.url + ME) == 200
        assert await agw.auth.sessions.store.get("session", key) == first
        agw.clock.advance(31)
        assert await status_of(s, agw.url + ME) == 200
        assert await agw.auth.sessions.store.get("session", key) != first


async def test_absolute_timeout_ends_an_active_session(agw):
    await agw.add_user()
    async with agw.client() as s:
        await agw.login(s)
        for _ in range(24):  # active every 29 minutes for 11.6 hours
            agw.clock.advance(29 * 60)
            assert await status_of(s, agw.url + ME) == 200
        agw.clock.advance(25 * 60)  # past 12h since login, still within idle
        assert await status_of(s, agw.url + ME) == 401
        async with s.get(agw.url + "/page") as r:
            assert forwarded(await r.json()) == {}


GARBAGE = [
    "",
    "x",
    "A" * 43,
    "A" * 42,
    "A" * 44,
    "%00%00",
    "../../etc/passwd",
    "\u00e9" * 43,
    '"quoted"',
    "a;b",
    "A" * 5000,
]


@pytest.mark.parametrize("value", GARBAGE)
async def test_garbage_or_forged_cookie_is_no_session(agw, value):
    name = agw.auth.sessions.cookie.name
    raw = f"{name}={value}".encode("utf-8", "surrogateescape")
    async with agw.client() as s:
        async with s.get(agw.url + ME, headers={"Cookie": raw.decode("latin-1")}) as r:
            assert r.status in (400, 401)
        async with s.get(agw.url + "/page", headers={"Cookie": raw.decode("latin-1")}) as r:
            assert r.status in (200, 400)
            if r.status == 200:
                assert forwarded(await r.json()) == {}


async def test_tampered_real_cookie_is_no_session(agw):
    await agw.add_user()
    async with agw.client() as s:
        await agw.login(s)
        token = agw.cookie(s)
    name = agw.auth.sessions.cookie.name
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for value in (flipped, token[:-1], token + "A", token.upper()):
        async with (
            agw.client() as s,
            s.get(agw.url + ME, headers={"Cookie": f"{name}={value}"}) as r,
        ):
            assert r.status == 401


async def test_corrupt_session_record_is_no_session(agw):
    await agw.add_user()
    async with agw.client() as s:
        await agw.login(s)
        [(key, _)] = await agw.auth.sessions.store.scan("session")
        await agw.auth.sessions.store.put("session", key, b"{not json")
        assert await status_of(s, agw.url + ME) == 401


async def test_role_change_disable_and_delete_show_on_next_request(agw):
    await agw.add_user("alice", roles=["staff"])
    users = agw.auth.users
    async with agw.client() as s:
        await agw.login(s)
        user = await users.get("alice")
        await users.save(replace(user, roles=("staff", "admin")))
        async with s.get(agw.url + "/page") as r:
            assert forwarded(await r.json())["X-Forwarded-Groups"] == "staff,admin"
        await users.save(replace(user, disabled=True))
        async with s.get(agw.url + "/page") as r:
            assert forwarded(await r.json()) == {}
        assert await status_of(s, agw.url + ME) == 401
    async with agw.client() as s:
        await users.save(replace(user, disabled=False))
        await agw.login(s)
        await users.delete("alice")
        await agw.add_user("alice", roles=["intern"])  # same name, a new user
        assert await status_of(s, agw.url + ME) == 401


async def test_password_change_ends_other_sessions(agw):
    await agw.add_user()
    async with agw.client() as a, agw.client() as b:
        await agw.login(a)
        await agw.login(b)
        new = "another long passphrase"
        async with a.post(
            agw.url + "/.gateway/password",
            json={"current_password": PASSWORD, "new_password": new},
        ) as r:
            assert r.status == 200
        assert await status_of(a, agw.url + ME) == 200
        assert await status_of(b, agw.url + ME) == 401
    async with (
        agw.client() as s,
        s.post(agw.url + "/.gateway/login", json={"username": "alice", "password": new}) as r,
    ):
        assert r.status == 200


async def test_password_rules(agw):
    await agw.add_user()

    async def breached(username: str, password: str) -> str | None:
        return "breached" if password == "password12345678" else None

    agw.gw.services["password_checks"].append(breached)
    async with agw.client() as s:
        await agw.login(s)
        for new, reason, status in [
            ("short", "too_short", 400),
            ("x" * 129, "too_long", 400),
            ("password12345678", "breached", 400),
        ]:
            async with s.post(
                agw.url + "/.gateway/password",
                json={"current_password": PASSWORD, "new_password": new},
            ) as r:
                assert r.status == status
                assert (await r.json())["reason"] == reason
        async with s.post(
            agw.url + "/.gateway/password",
            json={"current_password": "not it at all", "new_password": "x" * 20},
        ) as r:
            assert r.status == 401
        async with s.post(
            agw.url + "/.gateway/password",
            json={"current_password": PASSWORD, "new_password": "x" * 128},
        ) as r:
            assert r.status == 200


async def test_logout_json_and_form(agw):
    await agw.add_user()
    async with agw.client() as s:
        await agw.login(s)
        token = agw.cookie(s)
        async with s.post(agw.url + "/.gateway/logout", json={}) as r:
            assert r.status == 204
        assert await status_of(s, agw.url + ME) == 401
    name = agw.auth.sessions.cookie.name
    async with agw.client(cookies={name: token}) as s:
        assert await status_of(s, agw.url + ME) == 401


async def test_logout_form_needs_the_session_csrf_token(agw):
    await agw.add_user()
    async with agw.client() as s:
        await agw.login(s)
        async with s.post(
            agw.url + "/.gateway/logout", data={"x": "1"}, allow_redirects=False
        ) as r:
            assert r.status == 403
        assert await status_of(s, agw.url + ME) == 200
        async with s.get(agw.url + "/.gateway/password") as r:
            html = await r.text()
        token = html.split('name="csrf_token" value="')[1].split('"')[0]
        async with s.post(
            agw.url + "/.gateway/logout", data={"csrf_token": token}, allow_redirects=False
        ) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/.gateway/login"
        assert await status_of(s, agw.url + ME) == 401


async def test_cross_origin_post_is_refused(agw):
    await agw.add_user()
    async with agw.client() as s:
        await agw.login(s)
        async with s.post(
            agw.url + "/.gateway/api/logout-all", json={}, headers={"Origin": "https://evil.test"}
        ) as r:
            assert r.status == 403
        assert await status_of(s, agw.url + ME) == 200


async def test_list_and_revoke_sessions_by_public_id(agw):
    await agw.add_user()
    async with agw.client() as a, agw.client() as b:
        await agw.login(a)
        await agw.login(b)
        async with a.get(agw.url + "/.gateway/api/sessions") as r:
            listed = (await r.json())["sessions"]
        assert len(listed) == 2
        other = next(x for x in listed if not x["current"])
        secrets = {agw.cookie(a), agw.cookie(b)}
        assert other["id"] not in secrets
        async with a.delete(agw.url + "/.gateway/api/sessions/" + "0" * 32) as r:
            assert r.status == 404
        async with a.delete(agw.url + "/.gateway/api/sessions/" + other["id"]) as r:
            assert r.status == 204
        assert await status_of(b, agw.url + ME) == 401
        assert await status_of(a, agw.url + ME) == 200
        async with a.post(agw.url + "/.gateway/api/logout-all", json={}) as r:
            assert r.status == 200
        assert await status_of(a, agw.url + ME) == 401
