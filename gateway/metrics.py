"""Prometheus metrics with the contract's names (DESIGN.md section 9), and their listener.

Label values are bounded: rule names, methods, status codes, fixed kinds; never paths,
usernames, IPs or anything secret. With several workers the supervisor sets
PROMETHEUS_MULTIPROC_DIR (cleaned at start) before the workers import this module, and serves
the summed values itself; a single worker serves its own registry. /metrics is only ever served
on `metrics.listen`, never on the public listener.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gateway import __version__

__all__ = [
    "REQUESTS",
    "REQUEST_DURATION",
    "UPSTREAM_DURATION",
    "UPSTREAM_ERRORS",
    "AUTH_ATTEMPTS",
    "LOCKOUTS",
    "SESSIONS_CREATED",
    "CRYPTO_OPS",
    "CRYPTO_BYTES",
    "POLICY_RELOADS",
    "CROSS_SITE_REFUSED",
    "PLUGIN_ERRORS",
    "INFO",
    "RULES_LOADED",
    "metrics_app",
    "prepare_multiprocess",
    "start_metrics_listener",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter("gateway_requests", "Requests answered", ["rule", "method", "status"])
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds", "Time to answer a request", ["rule"], buckets=_LATENCY
)
UPSTREAM_DURATION = Histogram(
    "gateway_upstream_duration_seconds",
    "Time until the upstream's response headers",
    buckets=_LATENCY,
)
UPSTREAM_ERRORS = Counter("gateway_upstream_errors", "Upstream failures", ["kind"])
AUTH_ATTEMPTS = Counter("gateway_auth_attempts", "Authentication attempts", ["factor", "result"])
LOCKOUTS = Counter("gateway_lockouts", "Lockouts started", ["scope"])
SESSIONS_CREATED = Counter("gateway_sessions_created", "Sessions created")
CRYPTO_OPS = Counter("gateway_crypto_operations", "Envelope operations", ["op", "result"])
CRYPTO_BYTES = Counter("gateway_crypto_bytes", "Bytes through envelope operations", ["op"])
CROSS_SITE_REFUSED = Counter(
    "gateway_cross_site_refused", "State-changing requests refused as cross-site", ["rule"]
)
POLICY_RELOADS = Counter("gateway_policy_reloads", "Policy reloads", ["result"])
PLUGIN_ERRORS = Counter(
    "gateway_plugin_errors", "Plugin hooks that raised (request failed closed)", ["plugin", "hook"]
)
# With workers, each process keeps its own copy of a gauge (0 until it first sets it) and the
# supervisor merges them. Health and policy gauges report the most recent value set by any
# live worker (timestamped; a worker that never set it does not count), so an idle worker
# cannot pin `store_up` at 0 while readyz is 200, nor keep a count a reload replaced.
# `livemostrecent` needs prometheus-client >= 0.18.
INFO = Gauge("gateway_info", "Gateway build information", ["version"], multiprocess_mode="max")
UPSTREAM_UP = Gauge(
    "gateway_upstream_up",
    "1 when the last upstream request got an answer",
    multiprocess_mode="livemostrecent",
)
STORE_UP = Gauge(
    "gateway_store_up",
    "1 when the last store operation or readiness check succeeded",
    multiprocess_mode="livemostrecent",
)
RULES_LOADED = Gauge(
    "gateway_policy_rules", "Rules in the live policy", multiprocess_mode="livemostrecent"
)
INFO.labels(version=__version__).set(1)


def prepare_multiprocess() -> Path:
    """Supervisor only: a fresh, empty directory for the workers' metric files."""
    folder = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))
    shutil.rmtree(folder)
    folder.mkdir(mode=0o700)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def _registry() -> CollectorRegistry:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def metrics_app() -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(_registry())
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


async def start_metrics_listener(listen: str) -> web.AppRunner:
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(metrics_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host.strip("[]"), int(port), reuse_port=False).start()
    return runner
