"""Sign-in with MFA from the outside: login answers, partial sessions (what they open, when
they end), enforcement `all` and `policy` with step-up, over JSON and over HTML forms."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.auth.conftest import PASSWORD
from tests.auth.mfa_support import JSON, challenge, code, enroll, login, secret_of, write_policy

ME = "/.gateway/api/me"


@pytest.fixture
def policy(tmp_path):
    write_policy(tmp_path)


async def status_of(s, url: str, **kw) -> int:
    async with s.get(url, allow_redirects=False, **kw) as r:
        await r.read()
        return r.status


async def test_enforce_all_json_login_answers_and_partial_session_opens_only_mfa(
    make_gateway, policy
):
    agw = await make_gateway(mfa={"enforce": "all"})
    await agw.add_user()
    async with agw.client() as s:
        assert await login(agw, s) == {"status": "mfa_enrollment_required"}
        # The partial session opens neither a protected route nor the account data.
        assert await status_of(s, agw.url + "/app/x", headers=JSON) == 401
        assert await status_of(s, agw.url + "/admin/x", headers=JSON) == 401
        async with s.get(agw.url + "/admin/x", headers=JSON) as r:
            assert await r.json() == {"error": "mfa_required", "enrollment_required": True}
        assert await status_of(s, agw.url + ME, headers=JSON) == 401
        assert await status_of(s, agw.url + "/.gateway/api/sessions", headers=JSON) == 401
        secret, codes = await enroll(agw, s)
        assert len(codes) == 10 and len(set(codes)) == 10
        assert all(re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", c) for c in codes)
        async with s.get(agw.url + ME) as r:
            me = await r.json()
        assert me["auth_level"] == "mfa" and me["mfa_enabled"] is True
        assert await status_of(s, agw.url + "/admin/x") == 200
    async with agw.client() as s:
        assert await login(agw, s) == {"status": "mfa_required"}
        partial = agw.cookie(s)
        assert await status_of(s, agw.url + "/app/x", headers=JSON) == 401
        async with s.get(agw.url + "/admin/x", headers=JSON) as r:
            assert r.status == 401 and await r.json() == {"error": "mfa_required"}
        # Setup cannot replace the active secret, even from a partial session.
        async with s.get(agw.url + "/.gateway/mfa/setup", headers=JSON) as r:
            assert r.status == 409 and await r.json() == {"error": "mfa_already_enabled"}
        assert await challenge(agw, s, code=code(agw, secret)) == (200, {"status": "authenticated"})
        assert agw.cookie(s) != partial  # a new id at level mfa; the partial one is ended
        assert await status_of(s, agw.url + "/app/x") == 200
    async with agw.client(cookies={agw.auth.sessions.cookie.name: partial}) as old:
        assert await status_of(old, agw.url + ME, headers=JSON) == 401
        assert (await challenge(agw, old, code=code(agw, secret, 1)))[0] == 401


async def test_partial_session_expires_after_five_minutes(make_gateway, policy):
    agw = await make_gateway(mfa={"enforce": "all"})
    await agw.add_user()
    async with agw.client() as s:
        await login(agw, s)
        secret, _ = await enroll(agw, s)
    async with agw.client() as s:
        await login(agw, s)
        agw.clock.advance(299)
        async with s.get(agw.url + "/.gateway/mfa", headers=JSON) as r:
            assert r.status == 200
        agw.clock.advance(1)
        async with s.get(agw.url + "/.gateway/mfa", headers=JSON) as r:
            assert r.status == 401
        assert (await challenge(agw, s, code=code(agw, secret)))[0] == 401


async def test_policy_mode_step_up_over_json(make_gateway, policy):
    agw = await make_gateway()  # enforce: policy
    await agw.add_user()
    async with agw.client() as s:
        assert await login(agw, s) == {"status": "authenticated"}
        # Not enrolled: the contract's code (DESIGN 5, 11), with a hint to enroll first.
        for accept in ("application/json", "Application/JSON"):
            async with s.get(agw.url + "/admin/x", headers={"Accept": accept}) as r:
                assert r.status == 401
                assert await r.json() == {"error": "mfa_required", "enrollment_required": True}
        async with s.post(agw.url + "/admin/x", json={"a": 1}) as r:
            assert r.status == 401
            assert await r.json() == {"error": "mfa_required", "enrollment_required": True}
        # A browser is still sent to the setup page.
        async with s.get(agw.url + "/admin/x?a=1&b=2", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"] == "/.gateway/mfa/setup?next=/admin/x%3Fa%3D1%26b%3D2"
        secret, _ = await enroll(agw, s)
    async with agw.client() as s:
        # Enrolled: the password gives a one-factor session, the mfa rule asks to step up.
        assert await login(agw, s) == {"status": "authenticated"}
        assert await status_of(s, agw.url + "/app/x") == 200
        async with s.get(agw.url + "/admin/x", headers=JSON) as r:
            assert r.status == 401 and await r.json() == {"error": "mfa_required"}
        assert (await challenge(agw, s, code="000000"))[0] == 401
        assert (await challenge(agw, s, code=code(agw, secret)))[0] == 200
        assert await status_of(s, agw.url + "/admin/x") == 200


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, name
    return found.group(1)


async def test_policy_mode_step_up_over_html_follows_redirects_back_to_next(make_gateway, policy):
    agw = await make_gateway()
    await agw.add_user()
    async with agw.client() as s:
        await login(agw, s)
        secret, _ = await enroll(agw, s)
    async with agw.client() as s:
        async with s.get(agw.url + "/admin/report?q=1") as r:
            assert str(r.url).startswith(agw.url + "/.gateway/login")
            form = await r.text()
        async with s.post(
            agw.url + "/.gateway/login",
            data={
                "username": "alice",
                "password": PASSWORD,
                "csrf_token": _field(form, "csrf_token"),
                "next": _field(form, "next"),
            },
        ) as r:
            # One factor, then the mfa rule sends the browser to the challenge page.
            assert r.status == 200 and urlsplit(str(r.url)).path == "/.gateway/mfa"
            page = await r.text()
        nxt = parse_qs(urlsplit(str(r.url)).query)["next"][0]
        assert nxt == "/admin/report?q=1"
        assert "<script" not in page and 'autocomplete="one-time-code"' in page
        fields = {"csrf_token": _field(page, "csrf_token"), "next": _field(page, "next")}
        # Without the CSRF token: refused.
        async with s.post(agw.url + "/.gateway/mfa", data={"code": code(agw, secret)}) as r:
            assert r.status == 403
        async with s.post(agw.url + "/.gateway/mfa", data={**fields, "code": "123456"}) as r:
            assert r.status == 401 and "not right" in await r.text()
        async with s.post(
            agw.url + "/.gateway/mfa", data={**fields, "code": code(agw, secret)}
        ) as r:
            assert r.status == 200 and urlsplit(str(r.url)).path == "/admin/report"
            assert r.history[0].status == 303


async def test_enforce_all_html_enrollment_shows_qr_then_codes_once(make_gateway, policy):
    agw = await make_gateway(mfa={"enforce": "all"})
    await agw.add_user()
    async with agw.client() as s:
        async with s.get(agw.url + "/.gateway/login") as r:
            form = await r.text()
        async with s.post(
            agw.url + "/.gateway/login",
            data={
                "username": "alice",
                "password": PASSWORD,
                "csrf_token": _field(form, "csrf_token"),
                "next": "/app/home",
            },
        ) as r:
            assert urlsplit(str(r.url)).path == "/.gateway/mfa/setup"
            page = await r.text()
            csp = r.headers["Content-Security-Policy"]
        assert "<svg" in page and "<script" not in page and "script-src" not in csp
        shown = re.search(r"<code>([A-Z2-7]{4}(?: [A-Z2-7]{1,4})+)</code>", page).group(1)
        secret_b32 = shown.replace(" ", "")  # shown in groups of four, typed without spaces
        secret = secret_of(secret_b32)
        fields = {"csrf_token": _field(page, "csrf_token"), "next": _field(page, "next")}
        async with s.post(agw.url + "/.gateway/mfa/setup", data={**fields, "code": "000000"}) as r:
            assert r.status == 401 and shown in await r.text()  # same secret shown again
        async with s.post(
            agw.url + "/.gateway/mfa/setup", data={**fields, "code": code(agw, secret)}
        ) as r:
            assert r.status == 200
            shown = re.findall(r"<code>([0-9A-Z-]{14})</code>", await r.text())
        assert len(shown) == 10
        assert await status_of(s, agw.url + "/app/home") == 200
        async with s.get(agw.url + "/.gateway/account") as r:
            account = await r.text()
        assert "10 unused backup codes" in account and not any(c in account for c in shown)


async def test_enforce_all_html_login_of_enrolled_user_goes_through_challenge_to_next(
    make_gateway, policy
):
    agw = await make_gateway(mfa={"enforce": "all"})
    await agw.add_user()
    async with agw.client() as s:
        await login(agw, s)
        secret, codes = await enroll(agw, s)
    async with agw.client() as s:
        async with s.get(agw.url + "/app/home?x=1") as r:
            form = await r.text()  # followed the 302 to the login page
        async with s.post(
            agw.url + "/.gateway/login",
            data={
                "username": "alice",
                "password": PASSWORD,
                "csrf_token": _field(form, "csrf_token"),
                "next": _field(form, "next"),
            },
        ) as r:
            assert r.history[0].status == 303
            assert urlsplit(str(r.url)).path == "/.gateway/mfa"
            page = await r.text()
        assert _field(page, "next") == "/app/home?x=1"
        assert await status_of(s, agw.url + "/app/home") == 302  # still partial
        fields = {"csrf_token": _field(page, "csrf_token"), "next": _field(page, "next")}
        async with s.post(agw.url + "/.gateway/mfa", data={**fields, "backup_code": codes[3]}) as r:
            assert r.status == 200 and str(r.url) == agw.url + "/app/home?x=1"
