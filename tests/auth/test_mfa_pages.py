"""The MFA pages as a browser uses them: the account page's MFA section (new codes, turning it
off, with CSRF), and the clear answers for a wrong code, a lock and an expired step."""

from __future__ import annotations

import re

import pytest

from tests.auth.conftest import PASSWORD
from tests.auth.mfa_support import code, enroll, login, secret_of, write_policy

LOCKOUT = {"max_failures": 3, "window": "15m", "duration": "30m", "ip_max_failures": 100}


def field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, name
    return found.group(1)


@pytest.fixture
async def agw(make_gateway, tmp_path):
    write_policy(tmp_path)
    gw = await make_gateway(mfa={"enforce": "all"}, lockout=LOCKOUT)
    await gw.add_user()
    return gw


async def page(s, url: str) -> tuple[int, str]:
    async with s.get(url) as r:
        return r.status, await r.text()


async def test_account_page_regenerates_codes_and_turns_mfa_off_with_csrf(agw):
    async with agw.client() as s:
        await login(agw, s)
        secret, codes = await enroll(agw, s)
        status, html = await page(s, agw.url + "/.gateway/account")
        assert status == 200 and "On. 10 unused backup codes left." in html
        csrf = field(html, "csrf_token")
        regen = {"password": PASSWORD, "code": code(agw, secret)}
        async with s.post(agw.url + "/.gateway/mfa/backup-codes", data=regen) as r:
            assert r.status == 403  # no CSRF token
        async with s.post(
            agw.url + "/.gateway/mfa/backup-codes", data={**regen, "csrf_token": csrf}
        ) as r:
            assert r.status == 200
            fresh = re.findall(r"<code>([0-9A-Z-]{14})</code>", await r.text())
        assert len(fresh) == 10 and not set(fresh) & set(codes)
        agw.clock.advance(30)
        off = {"password": "wrong password!!", "code": code(agw, secret), "csrf_token": csrf}
        async with s.post(agw.url + "/.gateway/mfa/disable", data=off) as r:
            assert r.status == 401 and "The password or the code is wrong." in await r.text()
        async with s.post(
            agw.url + "/.gateway/mfa/disable", data={**off, "password": PASSWORD}
        ) as r:
            assert r.status == 200 and r.history[0].status == 303
            assert str(r.url).endswith("/.gateway/account")
            assert "Off." in await r.text() and "/.gateway/mfa/setup" in await r.text()
    assert not await agw.auth.mfa.enabled("alice")


async def test_an_expired_mfa_step_says_so_and_offers_sign_in(agw):
    async with agw.client() as s:
        await login(agw, s)
        secret, _ = await enroll(agw, s)
    async with agw.client() as s:
        await login(agw, s)
        status, html = await page(s, agw.url + "/.gateway/mfa?next=/app/x")
        assert status == 200 and field(html, "next") == "/app/x"
        agw.clock.advance(301)
        form = {"csrf_token": field(html, "csrf_token"), "next": "/app/x", "code": "123456"}
        async with s.post(agw.url + "/.gateway/mfa", data=form) as r:
            text = await r.text()
        assert r.status == 401 and "expired" in text and 'action="/.gateway/login"' in text
        assert field(text, "next") == "/app/x"


async def test_a_locked_account_sees_a_429_page_with_retry_after(agw):
    async with agw.client() as s:
        await login(agw, s)
        secret, _ = await enroll(agw, s)
    async with agw.client() as s:
        await login(agw, s)
        _, html = await page(s, agw.url + "/.gateway/mfa")
        form = {"csrf_token": field(html, "csrf_token"), "next": "/"}
        for _ in range(3):
            async with s.post(agw.url + "/.gateway/mfa", data={**form, "code": "000000"}) as r:
                assert r.status == 401 and "not right" in await r.text()
        async with s.post(agw.url + "/.gateway/mfa", data={**form, "code": code(agw, secret)}) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "1800"
            assert "Too many attempts" in await r.text()


def shown_secret(html: str) -> str:
    """The key for manual entry as a user would type it (the page groups it by four)."""
    return re.search(r'<p class="secret"><code>([A-Z2-7 ]+)</code>', html).group(1).replace(" ", "")


async def test_setup_page_after_the_pending_secret_expired_shows_a_new_one(make_gateway):
    agw = await make_gateway()  # enforce: policy, so a full session outlives the 15 minutes
    await agw.add_user()
    async with agw.client() as s:
        await login(agw, s)
        _, html = await page(s, agw.url + "/.gateway/mfa/setup")
        first = shown_secret(html)
        agw.clock.advance(15 * 60 + 1)
        form = {"csrf_token": field(html, "csrf_token"), "next": "/", "code": "000000"}
        async with s.post(agw.url + "/.gateway/mfa/setup", data=form) as r:
            text = await r.text()
        assert r.status == 409 and "timed out" in text
        second = shown_secret(text)
        assert second != first
        form["code"] = code(agw, secret_of(second))
        async with s.post(agw.url + "/.gateway/mfa/setup", data=form) as r:
            assert r.status == 200 and "Save these codes now" in await r.text()
