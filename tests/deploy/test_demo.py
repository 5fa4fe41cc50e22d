"""`python -m gateway.demo`, the README's first command, as a newcomer runs it: it starts the
notes app and the gateway, creates the demo user, prints how to log in and where to set up MFA
once the gateway answers, and Ctrl-C/SIGTERM stops both processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from gateway.demo.setup_user import PASSWORD, USER
from tests.proxy.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_demo_starts_prints_login_and_mfa_setup_and_stops_cleanly(tmp_path: Path) -> None:
    gw_port, app_port = free_port(), free_port()
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    text = (ROOT / "gateway.yaml").read_text()
    text = text.replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{gw_port}")
    text = text.replace("url: http://127.0.0.1:9000", f"url: http://127.0.0.1:{app_port}")
    text = text.replace("listen: 127.0.0.1:9464", "listen: null")
    assert str(gw_port) in text and str(app_port) in text and "9464" not in text
    (tmp_path / "gateway.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_KEK"}
    env.update(GATEWAY_CONFIG=str(tmp_path / "gateway.yaml"), PYTHONPATH=str(ROOT))
    started = time.monotonic()
    demo = subprocess.Popen(
        [sys.executable, "-m", "gateway.demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = []
        for line in demo.stdout:
            banner.append(line)
            if "Ctrl-C" in line:
                break
        ready_after = time.monotonic() - started
        shown = "".join(banner)
        assert ready_after < 60, ready_after
        assert f"http://127.0.0.1:{gw_port}/notes" in shown
        assert USER in shown and PASSWORD in shown
        assert f"http://127.0.0.1:{gw_port}/.gateway/mfa/setup" in shown
        # The banner comes only once the gateway answers.
        with urllib.request.urlopen(  # noqa: S310 - loopback http
            f"http://127.0.0.1:{gw_port}/.gateway/healthz", timeout=5
        ) as r:
            assert r.status == 200
        login = urllib.request.Request(  # noqa: S310 - loopback http
            f"http://127.0.0.1:{gw_port}/.gateway/login",
            data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(login, timeout=10) as r:  # noqa: S310
            assert json.load(r) == {"status": "authenticated"}
        children = psutil.Process(demo.pid).children(recursive=True)
        assert len(children) >= 2
        # The dev key was made next to the config, private to its owner.
        assert (tmp_path / "var" / "dev-kek").stat().st_mode & 0o077 == 0
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=30) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
