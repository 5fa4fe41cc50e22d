"""Sessions through aiohttp-session over the gateway's records, as a client and the store see
them: one store round trip per authenticated request, a cookie whose user hint lies opens
nothing, and cookies issued before the hint keep working."""

from __future__ import annotations

import redis.asyncio as aioredis

from tests.auth.conftest import auth_config, launch

ME = "/.gateway/api/me"
AUTH_POLICY = """
rules:
  - name: app
    match: {paths: ["/**"]}
    access: authenticated
"""


async def _get(s, url: str) -> int:
    async with s.get(url) as r:
        await r.read()
        return r.status


async def _commands(r: aioredis.Redis) -> dict[str, int]:
    stats = await r.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def test_an_authenticated_request_reads_session_user_and_mfa_flag_and_nothing_else(
    upstream, tmp_path, redis_url
):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "00-auth.yaml").write_text(AUTH_POLICY)
    agw = await launch(auth_config(upstream.url, tmp_path, store={"url": redis_url}))
    r = aioredis.from_url(redis_url)
    try:
        await agw.add_user("alice")
        async with agw.client() as s:
            await agw.login(s)
            assert await _get(s, agw.url + "/notes/1") == 200
            await r.config_resetstat()
            for _ in range(10):
                assert await _get(s, agw.url + "/notes/1") == 200
            used = await _commands(r)
    finally:
        await agw.runner.cleanup()
        await r.aclose()
    used.pop("config|resetstat", None)
    used.pop("config", None)
    used.pop("info", None)
    # The session, the user record and the MFA flag: one MGET per request, and no write (the
    # idle refresh writes at most once a minute).
    assert used == {"mget": 10}


async def test_a_cookie_whose_user_hint_names_another_user_opens_nothing(agw):
    await agw.add_user("alice")
    await agw.add_user("bob")
    name = agw.auth.sessions.cookie.name
    async with agw.client() as a, agw.client() as b:
        await agw.login(a, "alice")
        await agw.login(b, "bob")
        alice, bob = agw.cookie(a), agw.cookie(b)
    forged = alice.partition(".")[0] + "." + bob.partition(".")[2]
    async with agw.client(cookies={name: forged}) as s:
        assert await _get(s, agw.url + ME) == 401
    # The lie ended nothing: alice's real cookie still opens her session.
    async with agw.client(cookies={name: alice}) as s:
        async with s.get(agw.url + ME) as r:
            assert r.status == 200
            assert (await r.json())["user"] == "alice"


async def test_a_cookie_issued_before_the_user_hint_still_opens_its_session(agw):
    await agw.add_user("alice")
    name = agw.auth.sessions.cookie.name
    async with agw.client() as s:
        await agw.login(s)
        token = agw.cookie(s)
    secret = token.partition(".")[0]  # what the gateway issued before the hint
    async with agw.client(cookies={name: secret}) as s:
        async with s.get(agw.url + ME) as r:
            assert r.status == 200
            assert (await r.json())["user"] == "alice"


async def test_a_hint_that_is_not_base64_is_no_session(agw):
    await agw.add_user("alice")
    name = agw.auth.sessions.cookie.name
    async with agw.client() as s:
        await agw.login(s)
        token = agw.cookie(s)
    for bad in (token.partition(".")[0] + ".A", token + ".x", token.partition(".")[0] + ".%%"):
        async with agw.client(cookies={name: bad}) as s:
            assert await _get(s, agw.url + ME) == 401
