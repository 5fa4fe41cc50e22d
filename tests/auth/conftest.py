"""Fixtures for auth tests: the gateway in-process on a free port with a fixed clock, in front
of the real echo upstream of tests/proxy, with a SQLite store in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.auth.service import AUTH, Auth
from gateway.clock import FixedClock
from gateway.config import Config
from gateway.edge.state import GATEWAY, Gateway
from gateway.startup.assemble import build
from tests.proxy.conftest import Upstream, gateway_config, upstream  # noqa: F401 - fixture

PASSWORD = "correct horse battery staple"
FAST_ARGON2 = {"argon2": {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}}


@dataclass
class AuthGw:
    url: str
    config: Config
    gw: Gateway
    clock: FixedClock
    runner: web.AppRunner

    @property
    def auth(self) -> Auth:
        return self.gw.services[AUTH]

    def client(self, **kw: object) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **kw)

    async def add_user(self, name: str = "alice", **kw: object):
        kw.setdefault("email", f"{name}@example.org")
        kw.setdefault("roles", ["staff"])
        return await self.auth.users.add(name, PASSWORD, **kw)

    async def login(self, s: aiohttp.ClientSession, name: str = "alice") -> None:
        async with s.post(
            self.url + "/.gateway/login", json={"username": name, "password": PASSWORD}
        ) as r:
            assert r.status == 200, await r.text()

    def cookie(self, s: aiohttp.ClientSession) -> str | None:
        for c in s.cookie_jar:
            if c.key == self.auth.sessions.cookie.name:
                return c.value
        return None


async def start(
    config: Config, clock: FixedClock | None = None
) -> tuple[web.AppRunner, Gateway, FixedClock]:
    clock = clock or FixedClock()
    app, _ = await build(config, clock=clock)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.listen_host, config.listen_port).start()
    return runner, app[GATEWAY], clock


async def launch(config: Config, clock: FixedClock | None = None) -> AuthGw:
    """The gateway of `config` started in-process; the caller stops it (`agw.runner`)."""
    runner, gw, clock = await start(config, clock)
    return AuthGw(f"http://127.0.0.1:{config.listen_port}", config, gw, clock, runner)


def auth_config(upstream_url: str, tmp_path: Path, **overrides: object) -> Config:
    overrides.setdefault("passwords", FAST_ARGON2)
    return gateway_config(upstream_url, tmp_path, **overrides)


@pytest.fixture
async def make_gateway(upstream: Upstream, tmp_path: Path) -> AsyncIterator:  # noqa: F811
    runners: list[web.AppRunner] = []

    async def make(**overrides: object) -> AuthGw:
        config = auth_config(upstream.url, tmp_path, **overrides)
        agw = await launch(config)
        runners.append(agw.runner)
        return agw

    yield make
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def agw(make_gateway) -> AuthGw:
    return await make_gateway()


def forwarded(body: dict) -> dict[str, str]:
    """The identity headers the echo upstream saw."""
    return {
        k: v
        for k, v in body["headers"]
        if k.lower().startswith("x-forwarded-")
        and k.lower() in ("x-forwarded-user", "x-forwarded-email", "x-forwarded-groups")
    }
