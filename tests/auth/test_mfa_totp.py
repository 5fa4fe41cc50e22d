"""TOTP verification: RFC 6238 vectors, skew edges on a fixed clock, replay refused on one
instance and across two instances on one Redis, and secrets sealed at rest."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from gateway.auth import totp
from gateway.auth.mfa import MfaUnavailable
from gateway.auth.totp import TotpSettings
from tests.auth.conftest import AuthGw, auth_config, launch
from tests.auth.mfa_support import challenge, code, enroll, login, write_policy

RFC_SECRET = b"12345678901234567890"
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("when", "expected"), RFC_VECTORS)
def test_rfc6238_sha1_vectors_through_our_verification(when, expected):
    settings = TotpSettings(digits=8, period=30, skew=0)
    assert totp.code_at(RFC_SECRET, when // 30, settings) == expected
    assert totp.matching_step(RFC_SECRET, expected, when, settings) == when // 30
    # One digit off, or the right code a step later with no skew: refused.
    wrong = expected[:-1] + str((int(expected[-1]) + 1) % 10)
    assert totp.matching_step(RFC_SECRET, wrong, when, settings) is None
    assert totp.matching_step(RFC_SECRET, expected, when + 30, settings) is None


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "12345a", "١٢٣٤٥٦", None, 123456])
def test_malformed_codes_match_nothing(bad):
    assert totp.matching_step(RFC_SECRET, bad, 59, TotpSettings()) is None


@pytest.fixture
async def mfa_gw(make_gateway, tmp_path) -> AuthGw:
    write_policy(tmp_path)
    agw = await make_gateway(mfa={"enforce": "all"})
    await agw.add_user()
    return agw


async def test_skew_accepts_one_step_either_side_and_refuses_two(mfa_gw):
    agw = mfa_gw
    async with agw.client() as s:
        assert (await login(agw, s))["status"] == "mfa_enrollment_required"
        secret, _ = await enroll(agw, s)
    mfa = agw.auth.mfa
    # Put the clock on the first second of a step: the edges are exactly one step away.
    agw.clock.set((int(agw.clock.now()) // 30 + 10) * 30)
    assert not await mfa.verify_totp("alice", code(agw, secret, -2))
    assert not await mfa.verify_totp("alice", code(agw, secret, +2))
    assert await mfa.verify_totp("alice", code(agw, secret, -1))
    agw.clock.advance(29)  # last second of the same step
    assert not await mfa.verify_totp("alice", code(agw, secret, +2))
    assert await mfa.verify_totp("alice", code(agw, secret, +1))


async def test_replayed_code_and_older_steps_are_refused(mfa_gw):
    agw = mfa_gw
    async with agw.client() as s:
        await login(agw, s)
        secret, _ = await enroll(agw, s)
    async with agw.client() as s:
        assert (await login(agw, s))["status"] == "mfa_required"
        now_code, old_code = code(agw, secret), code(agw, secret, -1)
        assert await challenge(agw, s, code=now_code) == (200, {"status": "authenticated"})
    async with agw.client() as s:
        await login(agw, s)
        # The same code again, within its window, and the previous step's code: both refused.
        assert await challenge(agw, s, code=now_code) == (401, {"error": "invalid_code"})
        assert await challenge(agw, s, code=old_code) == (401, {"error": "invalid_code"})
        agw.clock.advance(30)
        assert (await challenge(agw, s, code=code(agw, secret)))[0] == 200


async def test_replayed_totp_code_is_refused_on_second_instance(upstream, tmp_path, redis_url):
    gws = []
    try:
        for i in range(2):
            folder = tmp_path / f"gw{i}"
            write_policy(folder)
            config = auth_config(
                upstream.url, folder, store={"url": redis_url}, mfa={"enforce": "all"}
            )
            agw = await launch(config)
            gws.append(agw)
        one, two = gws
        two.clock.set(one.clock.now())
        await one.add_user("carol")
        async with one.client() as s:
            await login(one, s, "carol")
            secret, codes = await enroll(one, s)
        two.clock.set(one.clock.now())
        # The backup codes live in Redis too: one use on either instance spends it on both.
        assert await two.auth.mfa.codes_left("carol") == 10
        assert await two.auth.mfa.use_backup_code("carol", codes[0])
        assert not await one.auth.mfa.use_backup_code("carol", codes[0])
        assert await one.auth.mfa.codes_left("carol") == 9
        async with one.client() as a, two.client() as b:
            await login(one, a, "carol")
            await login(two, b, "carol")
            same = code(one, secret)
            answers = await asyncio.gather(
                challenge(one, a, code=same), challenge(two, b, code=same)
            )
        assert sorted(status for status, _ in answers) == [200, 401]
    finally:
        for g in gws:
            await g.runner.cleanup()


async def test_secret_is_sealed_and_a_copied_blob_fails_to_open(mfa_gw):
    agw = mfa_gw
    await agw.add_user("bob")
    async with agw.client() as s:
        await login(agw, s)
        secret, _ = await enroll(agw, s)
    store = agw.auth.users.store
    raw = await store.get("mfa", "alice")
    b32 = base64.b32encode(secret).rstrip(b"=")
    assert raw is not None and b32 not in raw and secret not in raw
    sealed = base64.b64decode(json.loads(raw)["sealed"])
    assert b32 not in sealed and secret not in sealed and b"default" in sealed  # kek id stamped
    # Bob's record replaced by a copy of Alice's: it does not open for Bob.
    await store.put("mfa", "bob", raw)
    with pytest.raises(MfaUnavailable):
        await agw.auth.mfa.verify_totp("bob", code(agw, secret))
    async with agw.client() as s:
        await login(agw, s, "bob")
        status, body = await challenge(agw, s, code=code(agw, secret))
    assert (status, body) == (503, {"error": "service_unavailable"})
    # A flipped byte in Alice's own record is refused too.
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    data = json.loads(raw)
    data["sealed"] = base64.b64encode(bytes(tampered)).decode()
    await store.put("mfa", "alice", json.dumps(data).encode())
    with pytest.raises(MfaUnavailable):
        await agw.auth.mfa.verify_totp("alice", code(agw, secret))
