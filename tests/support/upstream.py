"""A real aiohttp app served on a free loopback port, for tests that need their own upstream
(or a third-party API such as a password range service). The caller stops it by cleaning up
the runner."""

from __future__ import annotations

from aiohttp import web

from tests.support.redis import free_port

__all__ = ["serve"]


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Start `app` on 127.0.0.1 at a free port; (runner, base url without a trailing /)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"
