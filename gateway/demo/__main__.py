"""`python -m gateway.demo`: the demo notes app and the gateway in front of it, on the embedded
store, using ./gateway.yaml (or the repository's own when run elsewhere after `pip install -e .`).
Creates the demo user once, waits until the gateway answers, then prints how to log in and how
to enrol MFA. Ctrl-C (or SIGTERM) stops both processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from gateway.config import ConfigError, load_config
from gateway.demo.setup_user import PASSWORD, USER, ensure_user

READY_TIMEOUT = 60.0


def _config_path() -> Path:
    explicit = os.environ.get("GATEWAY_CONFIG")
    if explicit:
        return Path(explicit)
    here = Path.cwd() / "gateway.yaml"
    if here.exists():
        return here
    # An editable install: the repository's example config sits next to the package.
    return Path(__file__).resolve().parents[2] / "gateway.yaml"


def _wait_ready(url: str, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own URL
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def banner(base: str, upstream: str) -> str:
    return f"""
  Portcullis demo is running.

    Open          {base}/notes
    Log in as     {USER}  /  {PASSWORD}
    Set up MFA    {base}/.gateway/mfa/setup  (the notes need a second factor: after signing
                  in you are sent there; scan the QR code with an authenticator app, enter
                  the 6-digit code, keep the backup codes)
    Your account  {base}/.gateway/account  (sessions, password, sign out)

  Notes you save are encrypted by the gateway: the app stores only gwe1. tokens. See for
  yourself what the app holds (straight to the app, bypassing the gateway):
    curl -s -H 'X-Forwarded-User: {USER}' {upstream}/api/notes

  Ctrl-C stops the demo.
"""


def main() -> int:
    path = _config_path()
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    upstream = urlsplit(config.upstream.url)
    var = config.base_dir / "var"
    var.mkdir(exist_ok=True)
    app = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.demo.notes",
            str(upstream.port or 80),
            str(var / "demo-notes.json"),
        ]
    )
    gw: subprocess.Popen | None = None

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        ensure_user(str(path))
        gw = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "-c", str(path), "run", "--dev"]
        )
        host = config.listen_host if config.listen_host not in ("0.0.0.0", "::") else "127.0.0.1"
        base = f"http://{host}:{config.listen_port}"
        if _wait_ready(f"{base}/.gateway/healthz", gw):
            print(banner(base, config.upstream.url), flush=True)
        return gw.wait()
    except KeyboardInterrupt:
        if gw is not None:
            gw.send_signal(signal.SIGTERM)
            return gw.wait()
        return 0
    finally:
        app.terminate()
        app.wait()


if __name__ == "__main__":
    sys.exit(main())
