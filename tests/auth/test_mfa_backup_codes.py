"""Backup codes, disabling MFA and new codes: single use under concurrency, one Argon2 per
wrong code, password and code both required, audit events with user and IP, attempt metrics."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import REGISTRY

from tests.auth.conftest import PASSWORD
from tests.auth.mfa_support import JSON, challenge, code, enrolled_gateway, login


@pytest.fixture
async def enrolled(make_gateway, tmp_path):
    return await enrolled_gateway(make_gateway, tmp_path, mfa={"enforce": "all"})


def attempts(factor: str, result: str) -> float:
    labels = {"factor": factor, "result": result}
    return REGISTRY.get_sample_value("gateway_auth_attempts_total", labels) or 0.0


async def audit(agw, event: str) -> list[dict]:
    raw = await agw.auth.audit.store.audit_tail(10_000)
    return [e for e in map(json.loads, raw) if e["event"] == event]


async def test_backup_code_works_once_even_when_used_twice_at_once(enrolled):
    agw, _, codes = enrolled
    before = attempts("backup_code", "success")
    async with agw.client() as a, agw.client() as b:
        await login(agw, a)
        await login(agw, b)
        answers = await asyncio.gather(
            challenge(agw, a, backup_code=codes[0]), challenge(agw, b, backup_code=codes[0])
        )
    assert sorted(status for status, _ in answers) == [200, 401]
    assert attempts("backup_code", "success") == before + 1
    async with agw.client() as s:
        await login(agw, s)
        assert (await challenge(agw, s, backup_code=codes[0]))[0] == 401
        # Lower case, spaces instead of dashes, O for 0: still the same code.
        typed = codes[1].lower().replace("-", " ").replace("0", "o")
        assert await challenge(agw, s, backup_code=typed) == (200, {"status": "authenticated"})
    assert await agw.auth.mfa.codes_left("alice") == 8
    events = await audit(agw, "mfa.success")
    assert events[-1]["user"] == "alice" and events[-1]["ip"] == "127.0.0.1"
    assert events[-1]["factor"] == "backup_code"
    assert not any(c in json.dumps(events) for c in codes)


@pytest.mark.parametrize("wrong", ["right-id", "ABCD-EFGH-JKMN", "not a code", "Z" * 30])
async def test_a_wrong_backup_code_costs_one_argon2_verification(enrolled, wrong):
    agw, _, codes = enrolled
    if wrong == "right-id":
        wrong = codes[2][:12] + ("00" if codes[2][12:] != "00" else "11")
    before, failures = agw.auth.users.verifications, attempts("backup_code", "failure")
    async with agw.client() as s:
        await login(agw, s)
        before = agw.auth.users.verifications  # the login's own verification is not counted
        assert await challenge(agw, s, backup_code=wrong) == (401, {"error": "invalid_code"})
    assert agw.auth.users.verifications == before + 1
    assert attempts("backup_code", "failure") == failures + 1
    failure = (await audit(agw, "mfa.failure"))[-1]
    assert failure["user"] == "alice" and failure["ip"] == "127.0.0.1"


async def test_challenge_needs_exactly_one_of_code_and_backup_code(enrolled):
    agw, secret, codes = enrolled
    async with agw.client() as s:
        await login(agw, s)
        assert (await challenge(agw, s))[0] == 400
        assert (await challenge(agw, s, code=code(agw, secret), backup_code=codes[0]))[0] == 400
        async with s.post(agw.url + "/.gateway/mfa", data="code=1", headers=JSON) as r:
            assert r.status == 415
        async with s.post(
            agw.url + "/.gateway/mfa",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        ) as r:
            assert r.status == 400 and await r.json() == {"error": "bad_request"}


async def test_disable_and_regenerate_need_password_and_a_right_code(enrolled):
    agw, secret, codes = enrolled
    async with agw.client() as s:
        await login(agw, s)
        assert (await challenge(agw, s, code=code(agw, secret)))[0] == 200
        agw.clock.advance(30)
        for path in ("/.gateway/mfa/disable", "/.gateway/mfa/backup-codes"):
            for body, status in [
                ({"password": PASSWORD}, 400),
                ({"code": code(agw, secret)}, 400),
                ({"password": "wrong password!!", "code": code(agw, secret)}, 401),
                ({"password": PASSWORD, "code": "000000"}, 401),
            ]:
                async with s.post(agw.url + path, json=body) as r:
                    assert r.status == status, (path, body)
        assert await agw.auth.mfa.enabled("alice")
        async with s.post(
            agw.url + "/.gateway/mfa/backup-codes",
            json={"password": PASSWORD, "code": code(agw, secret)},
        ) as r:
            assert r.status == 200
            fresh = (await r.json())["backup_codes"]
        assert len(fresh) == 10 and not set(fresh) & set(codes)
        agw.clock.advance(30)
        async with s.post(
            agw.url + "/.gateway/mfa/disable", json={"password": PASSWORD, "code": fresh[0]}
        ) as r:
            assert r.status == 200 and await r.json() == {"status": "mfa_disabled"}
        assert not await agw.auth.mfa.enabled("alice")
        assert await agw.auth.users.store.scan("mfacode", "alice:") == []
    async with agw.client() as s:
        assert await login(agw, s) == {"status": "mfa_enrollment_required"}
    for event in ("mfa.enrolled", "mfa.disabled", "mfa.backup_codes_regenerated"):
        done = [e for e in await audit(agw, event) if e["outcome"] != "invalid_password"]
        assert len(done) == 1 and done[0]["user"] == "alice" and done[0]["ip"] == "127.0.0.1"
