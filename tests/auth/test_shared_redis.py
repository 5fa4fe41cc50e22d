"""Two gateway instances on one real Redis: a revoke or logout-all on one is seen by the other
on the very next request (no per-instance session cache)."""

from __future__ import annotations

from tests.auth.conftest import PASSWORD, auth_config, launch

ME = "/.gateway/api/me"


async def _pair(upstream, tmp_path, redis_url):
    gws = []
    for i in range(2):
        folder = tmp_path / f"gw{i}"
        folder.mkdir()
        config = auth_config(upstream.url, folder, store={"url": redis_url})
        agw = await launch(config)
        gws.append(agw)
    return gws


async def _status(s, url):
    async with s.get(url) as r:
        await r.read()
        return r.status


async def test_revoke_and_logout_all_are_seen_by_the_second_instance(upstream, tmp_path, redis_url):
    one, two = await _pair(upstream, tmp_path, redis_url)
    try:
        await one.add_user("alice")
        name = one.auth.sessions.cookie.name
        async with one.client() as a, one.client() as b, one.client() as c:
            await one.login(a)
            await one.login(b)
            await one.login(c)
            tokens = [one.cookie(x) for x in (a, b, c)]
        on_two = [two.client(cookies={name: t}) for t in tokens]
        try:
            for s in on_two:
                assert await _status(s, two.url + ME) == 200
            # Revoke b's session through instance one; instance two refuses it next.
            async with on_two[0].get(two.url + "/.gateway/api/sessions") as r:
                listed = (await r.json())["sessions"]
            assert len(listed) == 3
            async with one.client(cookies={name: tokens[0]}) as a1:
                me_b = next(x["id"] for x in listed if not x["current"])
                async with a1.delete(one.url + "/.gateway/api/sessions/" + me_b) as r:
                    assert r.status == 204
            statuses = [await _status(s, two.url + ME) for s in on_two]
            assert sorted(statuses) == [200, 200, 401]
            # Logout-all on instance two ends everything, also for instance one.
            async with on_two[0].post(two.url + "/.gateway/api/logout-all", json={}) as r:
                assert r.status == 200
            for t in tokens:
                async with one.client(cookies={name: t}) as s:
                    assert await _status(s, one.url + ME) == 401
            # A role change written through one instance shows on the other at once.
            async with two.client() as s:
                async with s.post(
                    two.url + "/.gateway/login", json={"username": "alice", "password": PASSWORD}
                ) as r:
                    assert r.status == 200
                user = await one.auth.users.get("alice")
                from dataclasses import replace

                await one.auth.users.save(replace(user, roles=("auditor",)))
                async with s.get(two.url + ME) as r:
                    assert (await r.json())["roles"] == ["auditor"]
        finally:
            for s in on_two:
                await s.close()
    finally:
        for g in (one, two):
            await g.runner.cleanup()
