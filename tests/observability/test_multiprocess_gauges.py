"""Health gauges under `gateway run --workers 2`, scraped from the metrics listener.

Each worker keeps its own copy of a gauge; the supervisor merges them. A worker that has not
yet checked the store or reached the upstream must not drag the merged value to 0 while
readyz answers 200, and the merged value follows the most recent observation, whichever
worker made it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
import pytest
import yaml
from aiohttp import web

from tests.proxy.conftest import PUBLIC_POLICY, free_port


async def start_upstream(port: int) -> web.AppRunner:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def gauges(text: str) -> dict[str, list[float]]:
    """Every sample line of the gateway's unlabelled health gauges, by name."""
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("gateway_store_up", "gateway_upstream_up", "gateway_policy_rules"):
            out.setdefault(name, []).append(float(value))
        elif name.split("{", 1)[0] in ("gateway_store_up", "gateway_upstream_up"):
            out.setdefault(name.split("{", 1)[0], []).append(float(value))  # a pid label
    return out


class Workers:
    def __init__(self, base: str, metrics: str) -> None:
        self.base = base
        self.metrics = metrics

    async def scrape(self, s: aiohttp.ClientSession) -> dict[str, list[float]]:
        async with s.get(self.metrics + "/metrics") as r:
            assert r.status == 200
            return gauges(await r.text())


@pytest.fixture
async def two_workers(tmp_path: Path) -> AsyncIterator[tuple[Workers, int]]:
    async for started in _two_workers(tmp_path):
        yield started[0], started[1]


@pytest.fixture
async def supervised(tmp_path: Path) -> AsyncIterator[tuple[Workers, int]]:
    """(gateway, supervisor pid)."""
    async for started in _two_workers(tmp_path):
        yield started[0], started[2]


async def _two_workers(tmp_path: Path) -> AsyncIterator[tuple[Workers, int, int]]:
    port, metrics_port, upstream_port = free_port(), free_port(), free_port()
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "00.yaml").write_text(PUBLIC_POLICY)
    conf = tmp_path / "gw.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "upstream": {"url": f"http://127.0.0.1:{upstream_port}", "connect_timeout": "1s"},
                "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
                "store": {"url": f"sqlite:///{tmp_path}/gw.db"},
            }
        )
    )
    log = (tmp_path / "gateway.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "gateway.cli", "run", "--workers", "2", "-c", str(conf)),
        stdout=log,
        stderr=log,
        env=os.environ.copy(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(150):
                try:
                    async with s.get(base + "/.gateway/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert proc.returncode is None, (tmp_path / "gateway.log").read_text()
                await asyncio.sleep(0.1)
            else:
                raise AssertionError((tmp_path / "gateway.log").read_text())
        yield Workers(base, f"http://127.0.0.1:{metrics_port}"), upstream_port, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        log.close()


async def test_health_gauges_follow_the_latest_observation_across_workers(two_workers) -> None:
    gw, upstream_port = two_workers
    # Fresh connections each time, so SO_REUSEPORT spreads requests over both workers.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.get(gw.base + "/.gateway/readyz") as r:
            assert r.status == 200
        scraped = await gw.scrape(s)
        # One merged series each (no per-pid copies); readyz said the store is up.
        assert scraped["gateway_store_up"] == [1.0]
        assert scraped["gateway_policy_rules"] == [1.0]

        upstream = await start_upstream(upstream_port)
        try:
            async with s.get(gw.base + "/page") as r:
                assert r.status == 200
            assert (await gw.scrape(s))["gateway_upstream_up"] == [1.0]
        finally:
            await upstream.cleanup()
        for _ in range(4):  # whichever worker answers, the upstream is down now
            async with s.get(gw.base + "/page") as r:
                assert r.status == 502
        assert (await gw.scrape(s))["gateway_upstream_up"] == [0.0]

        upstream = await start_upstream(upstream_port)
        try:
            async with s.get(gw.base + "/page") as r:
                assert r.status == 200
            # Back up: the most recent answer wins, not the lowest value of any worker.
            assert (await gw.scrape(s))["gateway_upstream_up"] == [1.0]
        finally:
            await upstream.cleanup()


async def test_a_dead_workers_health_gauges_leave_the_merge(supervised) -> None:
    gw, supervisor = supervised
    children = psutil.Process(supervisor).children()
    assert len(children) == 2
    folder = Path(children[0].environ()["PROMETHEUS_MULTIPROC_DIR"])
    victim = children[0].pid
    assert list(folder.glob(f"gauge_livemostrecent_{victim}.db"))
    os.kill(victim, signal.SIGKILL)
    for _ in range(100):  # the supervisor notices and starts a replacement
        pids = {p.pid for p in psutil.Process(supervisor).children()}
        if victim not in pids and len(pids) == 2:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("no replacement worker")
    # A stale value of a dead worker can no longer be the "most recent" one; its counters
    # stay so that request totals never go down.
    assert not list(folder.glob(f"gauge_livemostrecent_{victim}.db"))
    assert list(folder.glob(f"counter_{victim}.db"))
    async with aiohttp.ClientSession() as s:
        # The survivor (or the replacement, once it has loaded its policy) still reports the
        # rules; healthz answering says only that one worker is up, so allow for start-up.
        for _ in range(50):
            scraped = await gw.scrape(s)
            if scraped.get("gateway_policy_rules") == [1.0]:
                break
            await asyncio.sleep(0.1)
        assert scraped.get("gateway_policy_rules") == [1.0], scraped
