"""The admin verbs an operator types: users and sessions, against the configured store."""

from __future__ import annotations

import io
import json
import sys

import pytest

from gateway.cli import main

PASSWORD = "an operator chosen passphrase"


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "upstream: {url: 'http://127.0.0.1:9'}\n"
        "store: {url: 'sqlite:///gw.db'}\n"
        "passwords: {argon2: {time_cost: 1, memory_cost: 1024}}\n"
    )
    monkeypatch.setenv("GATEWAY_CONFIG", str(path))
    return path


def run(monkeypatch, capsys, *argv, stdin=""):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_user_lifecycle_from_the_command_line(config_file, monkeypatch, capsys):
    code, out, _ = run(
        monkeypatch, capsys, "users", "add", "Erin", "--email", "e@x.org",
        "--role", "admin", "--role", "ops", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0 and "created Erin" in out
    code, _, err = run(monkeypatch, capsys, "users", "add", "erin", "--password-stdin",
                       stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 1 and "exists" in err
    code, _, err = run(monkeypatch, capsys, "users", "add", "frank", "--password-stdin",
                       stdin="Qz7!xv\n")  # fmt: skip
    assert code == 1 and "too_short" in err and "Qz7!xv" not in err
    code, out, _ = run(monkeypatch, capsys, "users", "list", "-c", str(config_file))
    assert out.strip() == "Erin\te@x.org\tadmin,ops\tactive"
    code, out, _ = run(monkeypatch, capsys, "users", "set-roles", "ERIN", "viewer")
    assert code == 0
    code, out, _ = run(monkeypatch, capsys, "users", "show", "erin")
    shown = json.loads(out)
    assert shown["roles"] == ["viewer"] and "password_hash" not in shown
    assert PASSWORD not in out and "argon2" not in out
    assert run(monkeypatch, capsys, "users", "disable", "erin")[0] == 0
    assert "disabled" in run(monkeypatch, capsys, "users", "list")[1]
    assert run(monkeypatch, capsys, "users", "enable", "erin")[0] == 0
    code, out, _ = run(monkeypatch, capsys, "users", "passwd", "erin", "--password-stdin",
                       stdin="a different passphrase\n")  # fmt: skip
    assert code == 0
    assert run(monkeypatch, capsys, "users", "unlock", "erin")[0] == 0
    assert run(monkeypatch, capsys, "users", "reset-mfa", "erin")[0] == 0
    assert run(monkeypatch, capsys, "sessions", "list")[0] == 0
    code, out, _ = run(monkeypatch, capsys, "users", "delete", "erin")  # no TTY: no question
    assert code == 0 and "deleted" in out
    assert run(monkeypatch, capsys, "users", "list")[1] == ""
    assert run(monkeypatch, capsys, "users", "show", "erin")[0] == 1
    assert run(monkeypatch, capsys, "sessions", "revoke", "0" * 32)[0] == 1
