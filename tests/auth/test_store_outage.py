"""A real redis-server stopped and started under a running gateway: protected routes and login
fail closed with 503, public routes keep working, readiness follows the store, and the gateway
recovers without a restart."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.auth.conftest import PASSWORD, auth_config, launch

POLICY = """rules:
  - name: public
    match: {paths: ["/public/**"]}
    access: public
  - name: app
    match: {paths: ["/**"]}
    access: authenticated
"""


async def _status(s, method, url, **kw):
    async with s.request(method, url, **kw) as r:
        await r.read()
        return r.status


async def test_store_outage_fails_closed_and_recovers(upstream, tmp_path, redis_server, redis_url):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "00.yaml").write_text(POLICY)
    config = auth_config(upstream.url, tmp_path, store={"url": redis_url})
    agw = await launch(config)
    try:
        await agw.add_user("alice")
        async with agw.client() as s:
            await agw.login(s)
            assert await _status(s, "GET", agw.url + "/app/page") == 200
            redis_server.stop()
            try:
                assert await _status(s, "GET", agw.url + "/app/page") == 503
                assert await _status(s, "GET", agw.url + "/public/x") == 200
                login = {"username": "alice", "password": PASSWORD}
                assert await _status(s, "POST", agw.url + "/.gateway/login", json=login) == 503
                assert await _status(s, "GET", agw.url + "/.gateway/readyz") == 503
                assert REGISTRY.get_sample_value("gateway_store_up") == 0
                assert await _status(s, "GET", agw.url + "/.gateway/healthz") == 200
            finally:
                redis_server.start()
            assert await _status(s, "GET", agw.url + "/app/page") == 200
            assert await _status(s, "GET", agw.url + "/.gateway/readyz") == 200
            assert REGISTRY.get_sample_value("gateway_store_up") == 1
        assert [e for e in upstream.seen if e["raw_path"] == "/app/page"].__len__() == 2
    finally:
        await agw.runner.cleanup()
