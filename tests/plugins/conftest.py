"""Fixtures for plugin tests: a real upstream that records what it receives and can set
response headers (`?set=Name:Value`), and the gateway in-process in front of it with a policy
of a few named rules and the plugins a test asks for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from tests.auth.conftest import FAST_ARGON2, AuthGw, launch
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
class PluginGw(AuthGw):
    """The in-process gateway (tests/auth's, with its client and login) and the gateway.yaml
    written beside it for CLI commands."""

    config_file: Path = Path()


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
        agw = await launch(config)
        runners.append(agw.runner)
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
        return PluginGw(agw.url, agw.config, agw.gw, agw.clock, agw.runner, path)

    yield make
    for runner in runners:
        await runner.cleanup()
