"""A real demo stack for browser tests: the demo notes app and the gateway as separate processes
on free loopback ports (embedded SQLite store, a generated KEK, the shipped demo policy), a user
created through the CLI, and headless Debian Chromium driven by Playwright.

Chromium comes from the Debian package (`.ci/run` installs it); Playwright's own browser
download is never used. Screenshots go to $PORTCULLIS_ARTIFACTS or test-artifacts/browser/.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.crypto.keyring import generate_kek
from tests.proxy.conftest import free_port
from tests.support.tools import missing_tool

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PORTCULLIS_CHROMIUM", "/usr/bin/chromium")
USER, PASSWORD = "alice", "correct horse battery staple"

CONFIG = """listen: 127.0.0.1:{gw_port}
upstream: {{url: "http://127.0.0.1:{app_port}"}}
store: {{url: "sqlite:///var/gateway.db"}}
keys: {{active: default, kek: {{default: env:GATEWAY_KEK}}}}
metrics: {{listen: null}}
audit: {{log: stdout}}
policies: [policies/*.yaml]
"""


@dataclass
class DemoStack:
    base: str
    upstream: str
    notes_file: Path
    env: dict[str, str]
    config: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", "-c", str(self.config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - http only
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    work = tmp_path_factory.mktemp("demo")
    (work / "policies").mkdir()
    shutil.copy(ROOT / "policies" / "00-demo.yaml", work / "policies")
    (work / "var").mkdir()
    app_port, gw_port = free_port(), free_port()
    config = work / "gateway.yaml"
    config.write_text(CONFIG.format(gw_port=gw_port, app_port=app_port))
    env = {**os.environ, "GATEWAY_KEK": generate_kek(), "PYTHONPATH": str(ROOT)}
    stack = DemoStack(
        base=f"http://127.0.0.1:{gw_port}",
        upstream=f"http://127.0.0.1:{app_port}",
        notes_file=work / "var" / "notes.json",
        env=env,
        config=config,
    )
    logs = open(work / "processes.log", "w")  # noqa: SIM115 - closed below
    try:
        app = subprocess.Popen(
            [sys.executable, "-m", "gateway.demo.notes", str(app_port), str(stack.notes_file)],
            env=env,
            stdout=logs,
            stderr=subprocess.STDOUT,
        )
        stack.procs.append(app)
        added = stack.cli(
            "users",
            "add",
            USER,
            "--email",
            "alice@example.org",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        assert added.returncode == 0, added.stderr
        gw = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "-c", str(config), "run"],
            env=env,
            stdout=logs,
            stderr=subprocess.STDOUT,
        )
        stack.procs.append(gw)
        _wait_http(f"{stack.upstream}/static/hello.txt", app)
        _wait_http(f"{stack.base}/.gateway/healthz", gw)
        yield stack
    finally:
        for proc in reversed(stack.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        logs.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        missing_tool(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)")
    try:
        from playwright import sync_api
    except ImportError:
        missing_tool("playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    default = ROOT / "test-artifacts" / "browser"
    path = Path(os.environ.get("PORTCULLIS_ARTIFACTS") or default)
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.png"):
        old.unlink()
    return path
