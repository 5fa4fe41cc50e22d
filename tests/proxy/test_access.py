"""Policy decisions answered through a running gateway, as an anonymous client sees them,
and hot reload of the policy files under a running gateway."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.proxy.conftest import gateway_config, raw_request, start_gateway

POLICY = """rules:
  - name: dotfiles
    match: {paths: ["/.git/**", "/.git"]}
    access: deny
  - name: static
    match: {paths: ["/static/**"], methods: [GET, HEAD]}
    access: public
  - name: notes
    match: {paths: ["/notes", "/notes/**"]}
    access: authenticated
  - name: admin
    match: {paths: ["/admin", "/admin/**"]}
    access: mfa
    roles: [admin]
"""


@pytest.fixture
async def policed(upstream, tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "10-app.yaml").write_text(POLICY)
    config = gateway_config(upstream.url, tmp_path)
    runner = await start_gateway(config)
    yield config.listen_port, tmp_path, upstream
    await runner.cleanup()


CASES = [
    ("GET", "/static/app.css", {}, 200, None),
    ("HEAD", "/static/app.css", {}, 200, None),
    ("POST", "/static/app.css", {}, 403, "forbidden"),  # method not listed: default deny
    ("GET", "/static/../notes/1", {}, 302, "/.gateway/login?next=/notes/1"),
    ("GET", "/static/%2e%2e/admin/", {}, 302, "/.gateway/login?next=/admin/"),
    ("GET", "/notes", {"Accept": "application/json"}, 401, "authentication_required"),
    ("POST", "/notes", {}, 401, "authentication_required"),
    ("GET", "/.git/config", {}, 403, "forbidden"),
    ("GET", "//.git//config", {}, 403, "forbidden"),
    ("GET", "/unlisted", {}, 403, "forbidden"),
    ("GET", "/static//x", {}, 200, None),
    ("GET", "/Static/x", {}, 403, "forbidden"),
    ("GET", "/notes?x=/static/a", {}, 302, "/.gateway/login?next=/notes%3Fx%3D/static/a"),
    # The whole target is one `next` value: a raw `&` would cut it at the first parameter.
    ("GET", "/notes/x?a=1&b=2", {}, 302, "/.gateway/login?next=/notes/x%3Fa%3D1%26b%3D2"),
    # Media types are case-insensitive: any spelling of application/json is an API call.
    ("GET", "/notes", {"Accept": "APPLICATION/JSON"}, 401, "authentication_required"),
    (
        "GET",
        "/notes",
        {"Accept": "text/html, Application/Json;q=0.9"},
        401,
        "authentication_required",
    ),
    ("GET", "/admin", {"Accept": "Application/JSON"}, 401, "authentication_required"),
]


@pytest.mark.parametrize(("method", "path", "headers", "status", "detail"), CASES)
async def test_anonymous_decisions(policed, method, path, headers, status, detail):
    port, _, upstream = policed
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = f"{method} {path} HTTP/1.1\r\nHost: gw\r\n{extra}Connection: close\r\n\r\n".encode()
    got, response = await raw_request(port, raw)
    assert got == status, response[:300]
    head, _, body = response.partition(b"\r\n\r\n")
    if status == 302:
        assert f"Location: {detail}".encode() in head
    elif detail is not None:
        assert json.loads(body) == {"error": detail}
    if status != 200:
        assert upstream.seen == []


async def test_policy_edit_is_applied_and_invalid_edit_keeps_old_policy(policed):
    port, tmp_path, _ = policed
    url = f"http://127.0.0.1:{port}/unlisted"
    policy_file = tmp_path / "policies" / "10-app.yaml"
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            assert r.status == 403
        policy_file.write_text(
            POLICY
            + """  - name: opened
    match: {paths: ["/unlisted"]}
    access: public
"""
        )
        for _ in range(50):
            await asyncio.sleep(0.2)
            async with s.get(url) as r:
                if r.status == 200:
                    break
        assert r.status == 200
        policy_file.write_text("rules:\n  - {name: broken, match: {paths: [nope]}, access: x}\n")
        await asyncio.sleep(3.5)
        async with s.get(url) as r:
            assert r.status == 200  # the old, valid policy stays
        async with s.get(f"http://127.0.0.1:{port}/.gateway/readyz") as r:
            assert r.status == 200


async def test_rate_limited_rule_answers_429_with_retry_after(upstream, tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "10-app.yaml").write_text("""rules:
  - name: search
    match: {paths: ["/search"]}
    access: public
    rate_limit: {limit: 3/min, by: ip}
""")
    config = gateway_config(upstream.url, tmp_path)
    runner = await start_gateway(config)
    try:
        statuses = []
        async with aiohttp.ClientSession() as s:
            for _ in range(5):
                async with s.get(f"http://127.0.0.1:{config.listen_port}/search") as r:
                    statuses.append(r.status)
                    if r.status == 429:
                        assert 1 <= int(r.headers["Retry-After"]) <= 60
                        assert await r.json() == {"error": "too_many_attempts"}
    finally:
        await runner.cleanup()
    assert statuses == [200, 200, 200, 429, 429]
    assert len([e for e in upstream.seen if e["raw_path"] == "/search"]) == 3
