"""`gateway keys status|rewrap|rotate` as an operator reads them: plain lines (or `--json`),
never Python reprs or key material, and no data key for a user who does not exist."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.crypto.keyring import generate_kek

PASSWORD = "an operator chosen passphrase"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """(use(active, *known KEK ids), run(*argv) -> (exit code, stdout, stderr))."""
    monkeypatch.setenv("GW_KEYS_CLI_K1", generate_kek())
    monkeypatch.setenv("GW_KEYS_CLI_K2", generate_kek())
    config = tmp_path / "gateway.yaml"

    def use(active: str, *known: str) -> None:
        refs = ", ".join(f"{k}: 'env:GW_KEYS_CLI_{k.upper()}'" for k in known)
        config.write_text(
            "upstream: {url: 'http://127.0.0.1:9'}\n"
            "store: {url: 'sqlite:///gw.db'}\n"
            "passwords: {argon2: {time_cost: 1, memory_cost: 1024}}\n"
            f"keys: {{active: {active}, kek: {{{refs}}}}}\n"
        )

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["-c", str(config), *argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    use("k1", "k1")
    return use, run


def test_rotate_refuses_a_user_who_does_not_exist(cli):
    _, run = cli
    code, out, err = run("keys", "rotate", "user:nobody")
    assert code == 1 and "no such user: nobody" in err and "version" not in out
    code, out, _ = run("keys", "status", "--json")
    assert json.loads(out)["data_keys"]["versions"] == 0  # nothing was created
    assert run("users", "add", "Alice", "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    code, _, err = run("keys", "rotate", "user:alice")  # not the scope the gateway uses
    assert code == 1 and "user:Alice" in err
    code, out, _ = run("keys", "rotate", "user:Alice")
    assert code == 0 and "user:Alice: version 1 is now active" in out
    code, out, _ = run("keys", "rotate", "role:staff")  # roles need no record
    assert code == 0 and "version 1" in out
    code, _, err = run("keys", "rotate", "group:x")
    assert code == 1 and "scope must be" in err and "Traceback" not in err


def test_status_and_rewrap_print_readable_lines_and_json(cli):
    use, run = cli
    assert run("users", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    assert run("keys", "rotate", "user:alice")[0] == 0
    assert run("keys", "rotate", "role:staff")[0] == 0
    assert run("keys", "rotate", "role:staff")[0] == 0
    use("k2", "k1", "k2")
    code, out, _ = run("keys", "status")
    assert code == 0
    assert out.splitlines() == [
        "active kek: k2",
        "data keys: 3 (scopes 2); by kek: k1=3; need rewrap: 3; unknown kek: 0",
        "mfa secrets: 0; by kek: -; need rewrap: 0",
    ]
    code, out, _ = run("keys", "rewrap")
    assert code == 0
    assert out.splitlines() == [
        "data keys: rewrapped 3; already current 0; failed 0",
        "mfa secrets: rewrapped 0; failed 0",
    ]
    code, out, _ = run("keys", "rewrap", "--json")
    assert json.loads(out) == {
        "data_keys": {"rewrapped": 0, "current": 3, "failed": []},
        "mfa_secrets": {"rewrapped": 0, "failed": []},
    }
    code, out, _ = run("keys", "status", "--json")
    data = json.loads(out)
    assert data["active_kek"] == "k2"
    assert data["data_keys"]["rows_by_kek"] == {"k2": 3} and data["data_keys"]["needs_rewrap"] == 0
    assert data["mfa_secrets"] == {"by_kek": {}, "needs_rewrap": 0}
    use("k2", "k2")
    code, out, _ = run("keys", "status")
    assert "KeyStatus" not in out and "SecretStatus" not in out
    for name in ("GW_KEYS_CLI_K1", "GW_KEYS_CLI_K2"):
        assert os.environ[name] not in out
