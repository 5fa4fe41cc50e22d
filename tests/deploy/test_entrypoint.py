"""The image's entrypoint (deploy/entrypoint.py), run outside Docker as the container would run
it: config and policies in a folder, state in another, the KEK from the environment."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from gateway.crypto.keyring import generate_kek
from tests.deploy.test_dockerfile import healthcheck_command
from tests.proxy.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.py"

CONFIG = """listen: 127.0.0.1:{port}
upstream: {{url: "http://127.0.0.1:{upstream_port}"}}
store: {{url: "sqlite:///{state}/gateway.db"}}
keys: {{active: default, kek: {{default: env:GATEWAY_KEK}}}}
metrics: {{listen: null}}
policies: [policies/*.yaml]
"""


class Container:
    def __init__(self, tmp: Path) -> None:
        self.etc = tmp / "etc"
        self.state = tmp / "state"
        self.etc.mkdir()
        self.state.mkdir()
        shutil.copytree(ROOT / "policies", self.etc / "policies")
        self.port = free_port()
        self.write(CONFIG.format(port=self.port, upstream_port=free_port(), state=self.state))
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("GATEWAY_KEK", "PORTCULLIS_DEV")
        }
        self.env.update(
            GATEWAY_CONFIG=str(self.etc / "gateway.yaml"),
            PORTCULLIS_STATE=str(self.state),
            PYTHONPATH=str(ROOT),
        )
        self.procs: list[subprocess.Popen] = []

    def write(self, text: str) -> None:
        (self.etc / "gateway.yaml").write_text(text)

    def run(self, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ENTRYPOINT)],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self, **env: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, str(ENTRYPOINT)],
            env={**self.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_healthy(self, proc: subprocess.Popen, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            try:
                with urllib.request.urlopen(self.url("/.gateway/healthz"), timeout=1) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the gateway never answered /.gateway/healthz")


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    box = Container(tmp_path)
    yield box
    for proc in box.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_invalid_config_exits_1_naming_every_bad_key(container: Container) -> None:
    container.write("listen: nowhere\nupstream: {url: ftp://x}\nsesion: {idle_timeout: 5m}\n")
    result = container.run(GATEWAY_KEK=generate_kek())
    assert result.returncode == 1
    for key in ("listen", "upstream.url", "sesion"):
        assert key in result.stderr
    assert "not starting" in result.stderr


def test_invalid_policy_exits_1_naming_the_file(container: Container) -> None:
    (container.etc / "policies" / "50-bad.yaml").write_text(
        "rules:\n  - name: x\n    match: {paths: ['/x']}\n    access: maybe\n"
    )
    result = container.run(GATEWAY_KEK=generate_kek())
    assert result.returncode == 1
    assert "50-bad.yaml" in result.stderr
    assert "access" in result.stderr


def test_missing_kek_exits_2_naming_the_variable(container: Container) -> None:
    result = container.run()
    assert result.returncode == 2
    assert "GATEWAY_KEK" in result.stderr
    assert "PORTCULLIS_DEV=1" in result.stderr
    assert not (container.state / "dev-kek").exists()


def test_malformed_kek_exits_2_without_echoing_it(container: Container) -> None:
    bad = "c2VjcmV0LXZhbHVlLXRoYXQtaXMtdG9vLXNob3J0"
    result = container.run(GATEWAY_KEK=bad, PORTCULLIS_DEV="1")  # dev mode never hides a bad key
    assert result.returncode == 2
    assert "GATEWAY_KEK" in result.stderr
    assert bad not in result.stderr + result.stdout


def test_good_config_serves_health_and_sigterm_exits_0(container: Container) -> None:
    proc = container.start(GATEWAY_KEK=generate_kek())
    container.wait_healthy(proc)
    # The entrypoint exec'd the gateway: the container's main process IS the gateway.
    assert "gateway.cli" in " ".join(psutil.Process(proc.pid).cmdline())
    with urllib.request.urlopen(container.url("/.gateway/readyz"), timeout=5) as r:  # noqa: S310
        assert r.status == 200
    # The image's HEALTHCHECK command, as Docker would run it.
    check = healthcheck_command()
    env = {**container.env, "PORTCULLIS_HEALTH_URL": container.url("/.gateway/healthz")}
    assert subprocess.run([sys.executable, *check[1:]], env=env, timeout=10).returncode == 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    down = subprocess.run([sys.executable, *check[1:]], env=env, capture_output=True, timeout=10)
    assert down.returncode != 0


def test_explicit_dev_mode_makes_a_private_key_file_in_the_state_volume(
    container: Container,
) -> None:
    proc = container.start(PORTCULLIS_DEV="1")
    container.wait_healthy(proc)
    key_file = container.state / "dev-kek"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    stderr = proc.stderr.read()
    assert "DEV MODE" in stderr
    assert key_file.read_text().strip() not in stderr
    # Nothing was written next to the (read-only in a container) config.
    assert not (container.etc / "var").exists()
