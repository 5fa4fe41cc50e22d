"""Process model: `gateway run` serves the public listener from one or more worker processes
sharing the port with SO_REUSEPORT, drains in-flight requests on SIGTERM (bounded) and exits 0.

With `workers > 1` this process becomes a small supervisor: it starts the workers, forwards
SIGTERM/SIGINT/SIGHUP to them, restarts a worker that dies unexpectedly, and exits when they
have all stopped. Each worker builds its own Gateway from the same config file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.config import Config

__all__ = ["serve", "supervise", "DRAIN_SECONDS"]

log = logging.getLogger("gateway.server")
DRAIN_SECONDS = 15.0
Starter = Callable[[Config, bool], Awaitable[tuple[web.Application, Callable[[], None]]]]


def _run(coro: Awaitable[int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]


def serve(config: Config, *, dev: bool, build: Starter, metrics: bool = True) -> int:
    """Run one worker in this process until SIGTERM/SIGINT; returns the exit code.
    `metrics=False` for supervised workers: the supervisor serves the summed metrics.
    Log lines are written in batches while it serves, all of them flushed before it returns."""
    from gateway.logs import batching

    with batching():
        return _run(_serve(config, dev=dev, build=build, metrics=metrics))


async def _serve(config: Config, *, dev: bool, build: Starter, metrics: bool = True) -> int:
    app, on_reload = await build(config, dev)
    metrics_runner = None
    if metrics and config.metrics.listen:
        from gateway.metrics import start_metrics_listener

        metrics_runner = await start_metrics_listener(config.metrics.listen)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner,
        config.listen_host,
        config.listen_port,
        reuse_port=True,
        shutdown_timeout=DRAIN_SECONDS,
        backlog=1024,
    )
    await site.start()
    log.info("listening", extra={"fields": {"listen": config.listen, "pid": os.getpid()}})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_reload)
    await stop.wait()
    log.info("draining", extra={"fields": {"pid": os.getpid(), "bound_s": DRAIN_SECONDS}})
    from gateway.edge.state import GATEWAY

    if GATEWAY in app:
        app[GATEWAY].draining = True
    await runner.cleanup()  # stops listening, waits (bounded) for in-flight requests
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    log.info("stopped", extra={"fields": {"pid": os.getpid()}})
    return 0


def supervise(argv: list[str], workers: int, metrics_listen: str | None = None) -> int:
    """Start `workers` copies of `argv` and shepherd them until a stop signal; serve the
    metrics summed over the workers (prometheus-client multiprocess mode)."""
    from prometheus_client import multiprocess

    from gateway.metrics import prepare_multiprocess

    folder = prepare_multiprocess()
    if metrics_listen:
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(folder))
        host, _, port = metrics_listen.rpartition(":")
        start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    procs: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def spawn() -> None:
        proc = subprocess.Popen(argv)
        procs[proc.pid] = proc

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for _ in range(workers):
        spawn()
    restarts: list[float] = []
    code = 0
    while procs:
        try:
            pid, status = os.wait()  # blocks until a worker exits; signals run `forward`
        except ChildProcessError:
            break
        rc = os.waitstatus_to_exitcode(status)
        if procs.pop(pid, None) is None:
            continue
        # Its `live*` gauges leave the merge (counters stay, so sums never drop).
        multiprocess.mark_process_dead(pid, str(folder))
        if stopping:
            code = code or (rc if rc > 0 else 0)
            continue
        log.error("worker exited", extra={"fields": {"pid": pid, "rc": rc}})
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < 60] + [now]
        if rc in (1, 2) or len(restarts) > 5 * workers:
            # a config or key error will not fix itself: stop everything, keep its code
            stopping = True
            code = rc if rc > 0 else 1
            forward(signal.SIGTERM, None)
        else:
            spawn()
    shutil.rmtree(folder, ignore_errors=True)
    return code


def worker_argv(config_path: str, dev: bool) -> list[str]:
    argv = [sys.executable, "-m", "gateway.cli", "-c", config_path, "run", "--worker"]
    return argv + (["--dev"] if dev else [])
