"""`gateway run` as real subprocesses for tests: a config file with a KEK file and a policy,
users made with the real CLI, start/stop with a healthz wait, and the ways an operator reads a
running gateway (its /metrics listener, `gateway audit tail`, the audit.log file, its stderr).

Used by tests/observability/ and tests/auth/test_lockout_processes.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.crypto.keyring import generate_kek
from tests.proxy.conftest import free_port

__all__ = [
    "PASSWORD",
    "Running",
    "add_user",
    "env",
    "events_in",
    "gateway_cli",
    "start_gateway",
    "stop_gateway",
    "wait_until",
    "write_config",
]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "an observable passphrase"


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


def write_config(
    folder: Path, upstream_url: str, policy: str, *, name: str = "gateway", **overrides: object
) -> Path:
    """`folder/<name>.yaml`: free listen and metrics ports, a SQLite store `gw.db`, the KEK file
    `kek1` and `policies/10-main.yaml` (both written once per folder, so several configs in one
    folder share them), cheap Argon2 parameters. `overrides` replace top-level keys."""
    (folder / "policies").mkdir(exist_ok=True)
    if not (folder / "policies" / "10-main.yaml").exists():
        (folder / "policies" / "10-main.yaml").write_text(policy)
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
    config = folder / f"{name}.yaml"
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
        """The process's stderr (the JSON app and access logs)."""
        return (self.folder / f"{self.config.stem}.err").read_text(errors="replace")


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def start_gateway(config: Path, *run_argv: str) -> Running:
    """`gateway -c CONFIG run RUN_ARGV...`, stderr to `<config stem>.err`, once healthz is 200.

    The ports come from `free_port()`, which another process on the machine can take before
    the gateway binds them: then (and only then) the config gets fresh ports and the start is
    tried again, at most twice more."""
    for attempt in range(3):
        try:
            return _start(config, run_argv)
        except _PortTaken:
            if attempt == 2:
                raise
            data = yaml.safe_load(config.read_text())
            data["listen"] = f"127.0.0.1:{free_port()}"
            if (data.get("metrics") or {}).get("listen"):
                data["metrics"]["listen"] = f"127.0.0.1:{free_port()}"
            config.write_text(yaml.safe_dump(data))
    raise AssertionError("unreachable")


class _PortTaken(AssertionError):
    pass


def _start(config: Path, run_argv: tuple[str, ...]) -> Running:
    data = yaml.safe_load(config.read_text())
    listen = data["listen"]
    err = (config.parent / f"{config.stem}.err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "-c", str(config), "run", *run_argv],
        stdout=err,
        stderr=err,
        env=env(),
        cwd=config.parent,
    )
    err.close()
    running = Running(config, f"http://{listen}", data["metrics"]["listen"], proc)

    def healthy() -> bool:
        if proc.poll() is not None:
            log = running.log_text()
            if "address already in use" in log.lower():
                raise _PortTaken(log)
            raise AssertionError(log)
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


def add_user(config: Path, name: str, *roles: str, password: str = PASSWORD) -> None:
    argv = ["users", "add", name, "--password-stdin"]
    for role in roles:
        argv += ["--role", role]
    res = gateway_cli(config, *argv, stdin=password + "\n")
    assert res.returncode == 0, res.stderr
