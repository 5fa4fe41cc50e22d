"""Login over JSON and HTML: success, anti-enumeration, bad input, fixation, cookie flags."""

from __future__ import annotations

import json
import re

import pytest

from tests.auth.conftest import PASSWORD

LOGIN = "/.gateway/login"


async def test_json_login_succeeds_and_me_answers(agw):
    await agw.add_user("Alice", roles=["admin", "staff"])
    async with agw.client() as s:
        async with s.post(agw.url + LOGIN, json={"username": "ALICE", "password": PASSWORD}) as r:
            assert r.status == 200
            assert await r.json() == {"status": "authenticated"}
        async with s.get(agw.url + "/.gateway/api/me") as r:
            assert r.status == 200
            assert await r.json() == {
                "user": "Alice",
                "email": "Alice@example.org",
                "roles": ["admin", "staff"],
                "mfa_enabled": False,
                "auth_level": "password",
            }
    events = [e for e in await agw.auth.audit.store.audit_tail(10)]
    assert any(b'"login.success"' in e for e in events)
    assert not any(PASSWORD.encode() in e for e in events)


async def test_unknown_wrong_and_disabled_answer_identically(agw):
    await agw.add_user("alice")
    user = await agw.add_user("dora")
    from dataclasses import replace

    await agw.auth.users.save(replace(user, disabled=True))
    answers = []
    async with agw.client() as s:
        for name, password in [
            ("nobody", PASSWORD),
            ("alice", "wrong password!!"),
            ("dora", PASSWORD),
        ]:
            async with s.post(agw.url + LOGIN, json={"username": name, "password": password}) as r:
                answers.append((r.status, await r.read(), r.headers.get("Content-Type")))
                assert agw.cookie(s) is None
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 401
    assert answers[0][1] == b'{"error":"invalid_credentials"}'
    events = await agw.auth.audit.store.audit_tail(10)
    assert sum(b'"login.failure"' in e for e in events) == 3


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b'{"username": "alice"}', "application/json"),
        (b'{"username": 1, "password": "x"}', "application/json"),
        (b"[1, 2]", "application/json"),
        (b"{not json", "application/json"),
    ],
)
async def test_malformed_json_login_is_bad_request(agw, body, ctype):
    async with (
        agw.client() as s,
        s.post(agw.url + LOGIN, data=body, headers={"Content-Type": ctype}) as r,
    ):
        assert r.status == 400
        assert await r.json() == {"error": "bad_request"}


async def test_json_client_with_other_content_type_is_refused(agw):
    await agw.add_user()
    async with agw.client() as s:
        for ctype in ("text/plain", "application/x-www-form-urlencoded"):
            async with s.post(
                agw.url + LOGIN,
                data=f"username=alice&password={PASSWORD}",
                headers={"Content-Type": ctype, "Accept": "application/json"},
            ) as r:
                assert r.status == 415
        assert agw.cookie(s) is None


async def _form(s, url):
    async with s.get(url + LOGIN + "?next=/notes/1") as r:
        assert r.status == 200
        assert "script" not in r.headers["Content-Security-Policy"].replace("'none'", "")
        html = await r.text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    nxt = re.search(r'name="next" value="([^"]+)"', html).group(1)
    return token, nxt, html


async def test_html_login_redirects_to_next_and_failure_rerenders(agw):
    await agw.add_user()
    async with agw.client() as s:
        token, nxt, html = await _form(s, agw.url)
        assert nxt == "/notes/1"
        assert "<script" not in html
        bad = {"csrf_token": token, "next": nxt, "username": "<b>alice", "password": "nope"}
        async with s.post(agw.url + LOGIN, data=bad, allow_redirects=False) as r:
            assert r.status == 401
            page = await r.text()
            assert "&lt;b&gt;alice" in page and "<b>alice" not in page
        good = {"csrf_token": token, "next": nxt, "username": "alice", "password": PASSWORD}
        async with s.post(agw.url + LOGIN, data=good, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/notes/1"
        assert agw.cookie(s)


async def test_login_form_without_csrf_token_is_refused(agw):
    await agw.add_user()
    async with agw.client() as s:
        token, _, _ = await _form(s, agw.url)
        for fields in (
            {"username": "alice", "password": PASSWORD},
            {"username": "alice", "password": PASSWORD, "csrf_token": "x" * 43},
        ):
            async with s.post(agw.url + LOGIN, data=fields, allow_redirects=False) as r:
                assert r.status == 403
        assert agw.cookie(s) is None
    # A token without the matching cookie (another browser's token) is refused too.
    async with agw.client() as other:
        fields = {"username": "alice", "password": PASSWORD, "csrf_token": token}
        async with other.post(agw.url + LOGIN, data=fields, allow_redirects=False) as r:
            assert r.status == 403


async def test_login_gives_a_new_session_id_and_kills_the_old_one(agw):
    await agw.add_user()
    async with agw.client() as s:
        await agw.login(s)
        before = agw.cookie(s)
        await agw.login(s)
        after = agw.cookie(s)
        assert before and after and before != after
    name = agw.auth.sessions.cookie.name
    async with agw.client(cookies={name: before}) as old:
        async with old.get(agw.url + "/.gateway/api/me") as r:
            assert r.status == 401
    async with agw.client(cookies={name: after}) as new:
        async with new.get(agw.url + "/.gateway/api/me") as r:
            assert r.status == 200


async def test_session_id_planted_before_login_is_not_kept(agw):
    await agw.add_user()
    name = agw.auth.sessions.cookie.name
    planted = "A" * 43
    async with (
        agw.client(cookies={name: planted}) as s,
        s.post(agw.url + LOGIN, json={"username": "alice", "password": PASSWORD}) as r,
    ):
        issued = r.cookies[name].value
    assert issued and issued != planted


async def test_cookie_flags_when_secure(make_gateway):
    agw = await make_gateway(session={"secure": True, "same_site": "strict"})
    await agw.add_user()
    async with agw.client() as s:
        async with s.post(agw.url + LOGIN, json={"username": "alice", "password": PASSWORD}) as r:
            cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("__Host-gateway_session=")
    flags = {p.strip().split("=")[0].lower(): p for p in cookie.split(";")[1:]}
    assert {"httponly", "secure", "path", "samesite"} <= flags.keys()
    assert flags["path"].strip() == "Path=/"
    assert flags["samesite"].strip() == "SameSite=Strict"
    assert "domain" not in flags
    token = cookie.split(";")[0].split("=", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]+", token)
    # Only the hash is stored: the cookie value is nowhere in the store.
    stored = await agw.auth.sessions.store.scan("session")
    assert stored and all(token not in k and token.encode() not in v for k, v in stored)


async def test_cookie_flags_on_localhost_auto(agw):
    await agw.add_user()
    async with agw.client() as s:
        async with s.post(agw.url + LOGIN, json={"username": "alice", "password": PASSWORD}) as r:
            cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("gateway_session=")
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


async def test_must_change_password_user_gets_only_the_password_step(agw):
    await agw.add_user("carol", must_change_password=True)
    async with agw.client() as s:
        async with s.post(agw.url + LOGIN, json={"username": "carol", "password": PASSWORD}) as r:
            assert await r.json() == {"status": "password_change_required"}
        async with s.get(agw.url + "/.gateway/api/me") as r:
            assert r.status == 403
        async with s.get(agw.url + "/anything") as r:
            assert "X-Forwarded-User" not in dict((await r.json())["headers"])
        new = "a brand new passphrase"
        async with s.post(
            agw.url + "/.gateway/password",
            json={"current_password": PASSWORD, "new_password": new},
        ) as r:
            assert r.status == 200
        async with s.get(agw.url + "/.gateway/api/me") as r:
            assert r.status == 200


async def test_audit_file_sink_gets_login_success_without_the_password(make_gateway, tmp_path):
    agw = await make_gateway(audit={"log": "logs/audit.jsonl"})
    (tmp_path / "logs").mkdir()
    await agw.add_user("alice")
    async with agw.client(headers={"User-Agent": "sink-test/1"}) as s:
        await agw.login(s)
    path = tmp_path / "logs" / "audit.jsonl"
    text = path.read_text()
    assert PASSWORD not in text
    events = [json.loads(line) for line in text.splitlines()]
    success = [e for e in events if e["event"] == "login.success"]
    assert len(success) == 1
    fields = {"time", "event", "user", "ip", "user_agent", "request_id", "outcome"}
    assert fields <= success[0].keys()
    assert success[0]["user"] == "alice" and success[0]["user_agent"] == "sink-test/1"
    assert success[0]["ip"] == "127.0.0.1" and success[0]["request_id"]
    assert path.stat().st_mode & 0o777 == 0o600
