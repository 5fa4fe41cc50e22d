"""The account page: who I am, my sessions with a revoke form each, log out everywhere; forms
are CSRF-checked, another user's session cannot be named, and everything shown is escaped."""

from __future__ import annotations

import json
import re

ACCOUNT = "/.gateway/account"
ME = "/.gateway/api/me"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_REVOKE = re.compile(r'action="/\.gateway/account/sessions/([0-9a-f]{32})/revoke"')


async def status_of(s, url: str) -> int:
    async with s.get(url, allow_redirects=False) as r:
        await r.read()
        return r.status


async def page(agw, s) -> str:
    async with s.get(agw.url + ACCOUNT, allow_redirects=False) as r:
        assert r.status == 200, await r.text()
        assert r.content_type == "text/html"
        assert "script-src" not in r.headers["Content-Security-Policy"]
        return await r.text()


def token_of(html: str) -> str:
    tokens = set(_TOKEN.findall(html))
    assert len(tokens) == 1
    return tokens.pop()


async def public_ids(agw, s, *, current: bool | None = None) -> list[str]:
    async with s.get(agw.url + "/.gateway/api/sessions") as r:
        listed = (await r.json())["sessions"]
    return [x["id"] for x in listed if current is None or x["current"] == current]


async def _audit(agw) -> list[dict]:
    return [json.loads(raw) for raw in await agw.auth.audit.store.audit_tail(100)]


async def revoke(agw, s, pid: str, data: dict) -> int:
    url = f"{agw.url}{ACCOUNT}/sessions/{pid}/revoke"
    async with s.post(url, data=data, allow_redirects=False) as r:
        await r.read()
        if r.status == 303:
            assert r.headers["Location"] == ACCOUNT
        return r.status


async def test_page_shows_the_user_and_both_sessions(agw):
    await agw.add_user("alice", roles=["admin", "ops"])
    async with agw.client() as one, agw.client() as two:
        await agw.login(one)
        await agw.login(two)
        html = await page(agw, one)
        ids = await public_ids(agw, one)
    assert len(ids) == 2
    assert sorted(_REVOKE.findall(html)) == sorted(ids)
    assert "alice@example.org" in html and "admin, ops" in html and ">alice<" in html
    assert html.count("(this session)") == 1
    assert 'href="/.gateway/password"' in html
    assert 'action="/.gateway/account/logout-all"' in html
    assert 'name="viewport"' in html and "/.gateway/static/gateway.css" in html


async def test_revoke_needs_the_csrf_token_and_then_ends_the_other_session(agw):
    await agw.add_user()
    async with agw.client() as one, agw.client() as two:
        await agw.login(one)
        await agw.login(two)
        token = token_of(await page(agw, one))
        [other] = await public_ids(agw, one, current=False)
        assert await revoke(agw, one, other, {"revoke": "1"}) == 403  # a form, no token
        assert await revoke(agw, one, other, {}) == 415  # no body at all
        assert await revoke(agw, one, other, {"csrf_token": "x" * 43}) == 403
        assert await status_of(two, agw.url + ME) == 200
        assert await revoke(agw, one, other, {"csrf_token": token}) == 303
        assert await status_of(two, agw.url + ME) == 401
        assert await status_of(one, agw.url + ME) == 200
    events = [e for e in await _audit(agw) if e["event"] == "session.revoked"]
    assert [e["outcome"] for e in events] == ["revoked"]


async def test_revoking_the_current_session_logs_out(agw):
    await agw.add_user()
    async with agw.client() as s:
        await agw.login(s)
        html = await page(agw, s)
        [mine] = _REVOKE.findall(html)
        assert await revoke(agw, s, mine, {"csrf_token": token_of(html)}) == 303
        assert agw.cookie(s) in (None, "")
        assert await status_of(s, agw.url + ACCOUNT) == 302


async def test_another_users_session_cannot_be_revoked(agw):
    await agw.add_user("alice")
    await agw.add_user("bob")
    async with agw.client() as alice, agw.client() as bob:
        await agw.login(alice)
        await agw.login(bob, "bob")
        token = token_of(await page(agw, alice))
        [bobs] = await public_ids(agw, bob)
        assert await revoke(agw, alice, bobs, {"csrf_token": token}) in (403, 404)
        assert await revoke(agw, alice, "not-an-id", {"csrf_token": token}) == 404
        assert await status_of(bob, agw.url + ME) == 200
        assert await status_of(alice, agw.url + ME) == 200


async def test_logout_everywhere_form(agw):
    await agw.add_user()
    async with agw.client() as one, agw.client() as two:
        await agw.login(one)
        await agw.login(two)
        token = token_of(await page(agw, one))
        url = agw.url + ACCOUNT + "/logout-all"
        async with one.post(url, data={"csrf_token": "wrong"}, allow_redirects=False) as r:
            assert r.status == 403
        assert await status_of(two, agw.url + ME) == 200
        async with one.post(url, data={"csrf_token": token}, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/.gateway/login"
        assert await status_of(one, agw.url + ME) == 401
        assert await status_of(two, agw.url + ME) == 401
    events = [e for e in await _audit(agw) if e["event"] == "session.revoked"]
    assert [(e["outcome"], e["count"]) for e in events] == [("logout_all", "2")]


async def test_the_page_is_escaped(agw):
    await agw.add_user()
    evil = '<script>alert("x")</script>'
    async with agw.client(headers={"User-Agent": evil}) as s:
        await agw.login(s)
        html = await page(agw, s)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


async def test_anonymous_get_redirects_to_login(agw):
    async with agw.client() as s:
        async with s.get(agw.url + ACCOUNT, allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"] == "/.gateway/login?next=/.gateway/account"
        url = f"{agw.url}{ACCOUNT}/sessions/{'0' * 32}/revoke"
        async with s.post(url, data={"csrf_token": "x"}, allow_redirects=False) as r:
            assert r.status == 401


async def test_a_user_who_must_change_the_password_is_sent_there(agw):
    await agw.add_user(must_change_password=True)
    async with agw.client() as s:
        await agw.login(s)
        async with s.get(agw.url + ACCOUNT, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/.gateway/password"
