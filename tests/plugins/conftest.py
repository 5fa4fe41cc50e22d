"""Fixtures for plugin tests: a real upstream that records what it receives and can set
response headers (`?set=Name:Value`), and the gateway in-process in front of it with a policy
of a few named rules and the plugins a test asks for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.auth.conftest import FAST_ARGON2, PASSWORD, start
from tests.proxy.conftest import gateway_config
from tests.support.upstream import serve

POLICY = """rules:
  - name: open
    match: {paths: ["/open/**"]}
    access: public
  - name: private
    match: {paths: ["/private/**"]}
    access: authenticated
  - name: admin
    match: {paths: ["/admin/**"]}
    access: authenticated
    roles: [admin]
  - name: secure
    match: {paths: ["/secure/**"]}
    access: mfa
  - name: embed
    match: {paths: ["/embed/**"]}
    access: public
"""


@dataclass
class Recorder:
    url: str
    seen: list[dict] = field(default_factory=list)


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder("")

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        rec.seen.append({"path": request.path, "headers": dict(request.headers)})
        resp = web.json_response({"path": request.path})
        for spec in request.query.getall("set", []):
            name, _, value = spec.partition(":")
            resp.headers[name] = value
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner, rec.url = await serve(app)
    yield rec
    await runner.cleanup()


@dataclass
class PluginGw:
    url: str
    gw: object
    runner: web.AppRunner
    config_file: Path

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def login(self, s: aiohttp.ClientSession, name: str = "alice") -> None:
        async with s.post(
            self.url + "/.gateway/login", json={"username": name, "password": PASSWORD}
        ) as r:
            assert r.status == 200, await r.text()


def write_policy(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "00-test.yaml").write_text(POLICY)


@pytest.fixture
async def plugin_gateway(recorder: Recorder, tmp_path: Path) -> AsyncIterator:
    """make(plugins=[...], **config overrides) -> a running gateway; a gateway.yaml with the
    same store and plugins is written beside it for CLI subprocesses."""
    runners: list[web.AppRunner] = []
    write_policy(tmp_path)

    async def make(plugins: list[dict], **overrides: object) -> PluginGw:
        overrides.setdefault("passwords", FAST_ARGON2)
        config = gateway_config(recorder.url, tmp_path, plugins=plugins, **overrides)
        runner, gw, _ = await start(config)
        runners.append(runner)
        import yaml

        path = tmp_path / "gateway.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "upstream": {"url": recorder.url},
                    "store": {"url": f"sqlite:///{tmp_path}/gw.db"},
                    "passwords": FAST_ARGON2,
                    "metrics": {"listen": None},
                    "plugins": plugins,
                }
            )
        )
        return PluginGw(f"http://127.0.0.1:{config.listen_port}", gw, runner, path)

    yield make
    for runner in runners:
        await runner.cleanup()
