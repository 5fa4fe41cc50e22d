"""`gateway audit tail`: the store's audit trail from the command line, filtered by user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PASSWORD = "an operator chosen passphrase"
ROOT = Path(__file__).resolve().parents[2]


def gateway(config: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", str(config), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        timeout=60,
    )


def test_audit_tail_shows_user_created_and_filters_by_user(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "upstream: {url: 'http://127.0.0.1:9'}\n"
        "store: {url: 'sqlite:///gw.db'}\n"
        "passwords: {argon2: {time_cost: 1, memory_cost: 1024}}\n"
    )
    added = gateway(config, "users", "add", "erin", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr

    tail = gateway(config, "audit", "tail")
    assert tail.returncode == 0, tail.stderr
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    assert any(e["event"] == "user.created" and e["user"] == "erin" for e in events)
    assert PASSWORD not in tail.stdout

    mine = gateway(config, "audit", "tail", "-n", "5", "--user", "erin")
    assert mine.returncode == 0, mine.stderr
    assert any(json.loads(line)["event"] == "user.created" for line in mine.stdout.splitlines())

    other = gateway(config, "audit", "tail", "--user", "other")
    assert other.returncode == 0, other.stderr
    assert other.stdout == ""
