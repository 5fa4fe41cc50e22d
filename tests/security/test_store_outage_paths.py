"""Every store-backed path fails closed while redis-server is stopped under a running gateway:
the MFA endpoints, the account API, password change, logout and the encrypting routes answer
503 JSON (never 500, never a pass), and the upstream sees none of them. tests/auth covers the
proxied route, login and the health checks."""

from __future__ import annotations

from tests.auth.conftest import PASSWORD, auth_config, launch
from tests.auth.mfa_support import JSON, code, enroll, login
from tests.encryption.conftest import write_setup

UNAVAILABLE = {"error": "service_unavailable"}


async def test_every_store_backed_path_fails_closed(upstream, tmp_path, redis_server, redis_url):
    config = auth_config(upstream.url, tmp_path, store={"url": redis_url}, **write_setup(tmp_path))
    agw = await launch(config)
    try:
        await agw.add_user("alice")
        await agw.add_user("bob")
        async with agw.client() as s, agw.client() as s2:
            await login(agw, s)
            secret, codes = await enroll(agw, s)
            await login(agw, s2, "bob")  # bob enrols next: a pending secret
            async with s2.get(agw.url + "/.gateway/mfa/setup", headers=JSON) as r:
                assert r.status == 200
            reauth = {"password": PASSWORD, "code": code(agw, secret)}
            probes = [
                (s, "POST", "/form/x", {"data": {"title": "secret"}}),
                (s, "POST", "/json/x", {"json": {"note": "secret"}}),
                (s, "GET", "/.gateway/mfa", {"headers": JSON}),
                (s, "POST", "/.gateway/mfa", {"json": {"code": code(agw, secret)}}),
                (s, "POST", "/.gateway/mfa", {"json": {"backup_code": codes[0]}}),
                (s2, "GET", "/.gateway/mfa/setup", {"headers": JSON}),
                (s2, "POST", "/.gateway/mfa/setup", {"json": {"code": "123456"}}),
                (s, "POST", "/.gateway/mfa/disable", {"json": reauth}),
                (s, "POST", "/.gateway/mfa/backup-codes", {"json": reauth}),
                (s, "GET", "/.gateway/api/me", {}),
                (s, "GET", "/.gateway/api/sessions", {}),
                (s, "DELETE", "/.gateway/api/sessions/" + "0" * 32, {}),
                (s, "POST", "/.gateway/api/logout-all", {"json": {}}),
                (s, "POST", "/.gateway/password", {"json": {"current_password": PASSWORD}}),
                (s, "GET", "/.gateway/account", {"headers": JSON}),
                (s, "POST", "/.gateway/logout", {"json": {}}),
            ]
            seen = len(upstream.seen)
            redis_server.stop()
            try:
                for session, method, path, kw in probes:
                    async with session.request(method, agw.url + path, **kw) as r:
                        answer = (r.status, await r.json())
                    assert answer == (503, UNAVAILABLE), (method, path, answer)
            finally:
                redis_server.start()
            assert len(upstream.seen) == seen
            # Nothing was spent or changed while the store was away.
            assert await agw.auth.mfa.enabled("alice")
            assert await agw.auth.mfa.codes_left("alice") == 10
            async with s.get(agw.url + "/.gateway/api/me") as r:
                assert r.status == 200
    finally:
        await agw.runner.cleanup()
