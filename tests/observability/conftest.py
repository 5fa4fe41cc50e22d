"""Fixtures for observability tests: `gateway run` as a real subprocess (its own metrics
listener, an `audit.log` file, a SQLite store, a KEK file) in front of the storing upstream of
tests/encryption, users made with the real CLI; helpers to scrape /metrics and read the trail
both ways an operator would (`gateway audit tail` and the audit.log file)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.crypto.keyring import generate_kek
from tests.encryption.conftest import Store, store_upstream  # noqa: F401 - fixture
from tests.proxy.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "an observable passphrase"

POLICY = """rules:
  - name: form
    match: {paths: ["/form/**"]}
    access: authenticated
    encrypt: {request: {form_fields: [title]}, response: tokens}
  - name: admin
    match: {paths: ["/admin/**"]}
    access: authenticated
    roles: [admin]
  - name: blocked
    match: {paths: ["/blocked/**"]}
    access: deny
  - name: open
    match: {paths: ["/**"]}
    access: public
"""


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("GATEWAY_CONFIG",)}
    out.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), out.get("PYTHONPATH")]))
    return out


def gateway_cli(config: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", str(config), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env(),
        cwd=config.parent,
        timeout=60,
    )


def write_config(folder: Path, upstream_url: str, **overrides: object) -> Path:
    (folder / "policies").mkdir(exist_ok=True)
    if not (folder / "policies" / "10-main.yaml").exists():
        (folder / "policies" / "10-main.yaml").write_text(POLICY)
    if not (folder / "kek1").exists():
        (folder / "kek1").write_text(generate_kek() + "\n")
    data: dict = {
        "listen": f"127.0.0.1:{free_port()}",
        "upstream": {"url": upstream_url, "timeout": "5s", "connect_timeout": "2s"},
        "store": {"url": "sqlite:///gw.db"},
        "keys": {"active": "k1", "kek": {"k1": "file:kek1"}},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "audit": {"log": "audit.log"},
        "passwords": {"argon2": {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}},
    }
    data.update(overrides)
    config = folder / "gateway.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def events_in(lines: str) -> list[dict]:
    return [json.loads(line) for line in lines.splitlines() if line.strip()]


@dataclass
class Running:
    config: Path
    url: str
    metrics_listen: str
    proc: subprocess.Popen[bytes]

    @property
    def folder(self) -> Path:
        return self.config.parent

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"User-Agent": "obs-test/1.0"}
        )

    def tail(self, *argv: str) -> list[dict]:
        """`gateway audit tail ...` as an operator runs it."""
        res = gateway_cli(self.config, "audit", "tail", *argv)
        assert res.returncode == 0, res.stderr
        return events_in(res.stdout)

    def audit_file(self) -> list[dict]:
        path = self.folder / "audit.log"
        return events_in(path.read_text()) if path.exists() else []

    def scrape(self) -> dict[tuple[str, frozenset], float]:
        with urllib.request.urlopen(f"http://{self.metrics_listen}/metrics", timeout=5) as r:
            text = r.read().decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def log_text(self) -> str:
        return (self.folder / "gateway.err").read_text(errors="replace")


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def start_gateway(config: Path) -> Running:
    data = yaml.safe_load(config.read_text())
    listen = data["listen"]
    err = (config.parent / "gateway.err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "-c", str(config), "run"],
        stdout=err,
        stderr=err,
        env=env(),
        cwd=config.parent,
    )
    running = Running(config, f"http://{listen}", data["metrics"]["listen"], proc)

    def healthy() -> bool:
        assert proc.poll() is None, running.log_text()
        try:
            with urllib.request.urlopen(f"http://{listen}/.gateway/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    wait_until(healthy, "the gateway to answer healthz", timeout=30)
    return running


def stop_gateway(running: Running) -> None:
    if running.proc.poll() is None:
        running.proc.send_signal(signal.SIGTERM)
        try:
            running.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait()


def add_user(config: Path, name: str, *roles: str) -> None:
    argv = ["users", "add", name, "--password-stdin"]
    for role in roles:
        argv += ["--role", role]
    res = gateway_cli(config, *argv, stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr


@pytest.fixture
async def running(store_upstream: Store, tmp_path: Path) -> AsyncIterator[Running]:  # noqa: F811
    """The gateway subprocess with user alice (role staff, not admin)."""
    config = write_config(tmp_path, store_upstream.url)
    add_user(config, "alice", "staff")
    gw = start_gateway(config)
    yield gw
    stop_gateway(gw)
