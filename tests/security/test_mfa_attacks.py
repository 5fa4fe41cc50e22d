"""MFA and lockout attacks from the outside: what an attacker who knows (or guesses) a
password can do against the second factor."""

from __future__ import annotations

from tests.auth.conftest import PASSWORD
from tests.auth.mfa_support import (
    JSON,
    challenge,
    code,
    enroll,
    enrolled_gateway,
    login,
    write_policy,
)

LOCKOUT = {"max_failures": 5, "window": "15m", "duration": "30m", "ip_max_failures": 1000}


async def test_a_fresh_password_login_does_not_reset_the_totp_failure_count(make_gateway, tmp_path):
    """Attack: under `mfa.enforce: policy`, guess TOTP codes on the step-up challenge, then
    sign in with the (stolen) password again before the lock, and repeat. The password alone
    must not wipe the count of wrong second-factor answers."""
    agw, _, _ = await enrolled_gateway(make_gateway, tmp_path, lockout=LOCKOUT)
    statuses, logins = [], []
    async with agw.client() as s:
        for _ in range(3):
            async with s.post(
                agw.url + "/.gateway/login", json={"username": "alice", "password": PASSWORD}
            ) as r:
                logins.append(r.status)
            for _ in range(3):
                statuses.append((await challenge(agw, s, code="000000"))[0])
    # Five wrong codes in the window lock the account, however many password logins between.
    assert statuses[:4] == [401] * 4 and set(statuses[5:]) == {429}, statuses
    assert logins[:2] == [200, 200] and logins[2] == 429, logins
    assert (await agw.auth.lockout.state("alice")).locked_until is not None


async def test_a_rejected_password_change_does_not_reset_the_totp_failure_count(
    make_gateway, tmp_path
):
    """Attack: the same reset through POST /.gateway/password with the right current password
    and a new one that is refused (too short): the failures must stay counted."""
    agw, _, _ = await enrolled_gateway(make_gateway, tmp_path, lockout=LOCKOUT)
    statuses = []
    async with agw.client() as s:
        await login(agw, s)
        for _ in range(3):
            for _ in range(3):
                statuses.append((await challenge(agw, s, code="000000"))[0])
            async with s.post(
                agw.url + "/.gateway/password",
                json={"current_password": PASSWORD, "new_password": "short"},
            ) as r:
                # 401 mfa_required since the step-up rule below; either way no reset.
                assert r.status in (400, 401, 429), await r.text()
    assert statuses[:4] == [401] * 4 and set(statuses[5:]) == {429}, statuses


async def test_a_partial_session_changes_nothing_on_the_account(make_gateway, tmp_path):
    """Attack: with the password only (enforce: all, MFA pending), use the partial session on
    every state-changing account endpoint: change the password, turn MFA off, take new backup
    codes, log the owner out everywhere. Each is 401 and nothing changes."""
    write_policy(tmp_path)
    agw = await make_gateway(mfa={"enforce": "all"})
    await agw.add_user()
    async with agw.client() as s:
        await login(agw, s)
        secret, codes = await enroll(agw, s)
        owner = agw.cookie(s)
    async with agw.client() as s:
        assert (await login(agw, s))["status"] == "mfa_required"
        reauth = {"password": PASSWORD, "code": code(agw, secret)}
        for method, path, body in [
            (
                "POST",
                "/.gateway/password",
                {"current_password": PASSWORD, "new_password": "n" * 20},
            ),
            ("POST", "/.gateway/mfa/disable", reauth),
            ("POST", "/.gateway/mfa/backup-codes", {"password": PASSWORD, "code": codes[0]}),
            ("POST", "/.gateway/api/logout-all", {}),
            ("POST", "/.gateway/account/logout-all", {}),
            ("DELETE", "/.gateway/api/sessions/" + "0" * 32, None),
            ("GET", "/.gateway/account", None),
        ]:
            async with s.request(method, agw.url + path, json=body, headers=JSON) as r:
                assert r.status == 401, (path, r.status, await r.text())
    assert await agw.auth.mfa.enabled("alice")
    assert await agw.auth.mfa.codes_left("alice") == 10
    assert await agw.auth.users.verify_login("alice", PASSWORD) is not None
    assert await agw.auth.sessions.load(owner) is not None


async def test_a_password_alone_cannot_change_the_password_of_an_mfa_account(
    make_gateway, tmp_path
):
    """Attack: under `mfa.enforce: policy` the stolen password gives a one-factor session;
    with it, POST /.gateway/password replaced the password and ended every other session,
    the owner's MFA sessions included: the account was taken from its owner without the
    second factor. The change now needs the session stepped up with a code first."""
    write_policy(tmp_path)
    agw = await make_gateway()
    await agw.add_user()
    async with agw.client() as owner:
        await login(agw, owner)
        secret, _ = await enroll(agw, owner)
        owner_cookie = agw.cookie(owner)
    change = {"current_password": PASSWORD, "new_password": "attacker chose this one"}
    async with agw.client() as s:
        assert (await login(agw, s))["status"] == "authenticated"  # one factor
        async with s.post(agw.url + "/.gateway/password", json=change) as r:
            assert (r.status, await r.json()) == (401, {"error": "mfa_required"})
        async with s.post(
            agw.url + "/.gateway/password",
            data={**change, "csrf_token": "x"},
            allow_redirects=False,
        ) as r:
            assert r.status in (302, 303, 403)
        assert await agw.auth.users.verify_login("alice", PASSWORD) is not None
        assert await agw.auth.sessions.load(owner_cookie) is not None
        # With the second factor the same session may change it.
        assert await challenge(agw, s, code=code(agw, secret)) == (200, {"status": "authenticated"})
        async with s.post(agw.url + "/.gateway/password", json=change) as r:
            assert r.status == 200, await r.text()
