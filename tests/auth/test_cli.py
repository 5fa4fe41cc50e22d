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
    assert out.splitlines() == [
        "NAME  EMAIL    ROLES      STATE",
        "Erin  e@x.org  admin,ops  active",
    ]
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
    assert run(monkeypatch, capsys, "users", "list")[1] == "no users\n"
    assert run(monkeypatch, capsys, "users", "show", "erin")[0] == 1
    assert run(monkeypatch, capsys, "sessions", "revoke", "0" * 32)[0] == 1


async def _session_for(config_file, name: str) -> None:
    """A live session of `name`, made the way a login makes one (same store, same records)."""
    from gateway.auth.service import make_auth
    from gateway.clock import SystemClock
    from gateway.config import load_config
    from gateway.store import open_store

    config = load_config(config_file)
    store = await open_store(config.store.url, base_dir=config.base_dir)
    try:
        auth = make_auth(config, store, SystemClock())
        user = await auth.users.require(name)
        await auth.sessions.create(
            user.key, user_uid=user.uid, auth_level="password", ip="203.0.113.9", user_agent="t"
        )
    finally:
        await store.close()


def test_sessions_list_has_a_header_readable_times_and_json_for_scripts(
    config_file, monkeypatch, capsys
):
    import asyncio
    import re

    assert run(monkeypatch, capsys, "sessions", "list")[1] == "no sessions\n"
    run(monkeypatch, capsys, "users", "add", "erin", "--password-stdin", stdin=PASSWORD + "\n")
    asyncio.run(_session_for(config_file, "erin"))
    code, out, _ = run(monkeypatch, capsys, "sessions", "list")
    header, row = out.splitlines()
    assert code == 0 and header.split() == [
        "ID",
        "USER",
        "LEVEL",
        "ADDRESS",
        "CREATED",
        "LAST",
        "SEEN",
    ]
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    assert re.fullmatch(
        rf"[0-9a-f]{{32}}\s+erin\s+password\s+203\.0\.113\.9\s+{stamp}\s+{stamp}", row
    )
    code, out, _ = run(monkeypatch, capsys, "sessions", "list", "--json")
    (listed,) = json.loads(out)
    assert listed["user"] == "erin" and listed["auth_level"] == "password"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", listed["created"])
    assert re.fullmatch(r"[0-9a-f]{32}", listed["id"])
    # The id listed is the one `sessions revoke` takes.
    assert run(monkeypatch, capsys, "sessions", "revoke", listed["id"])[0] == 0
    assert json.loads(run(monkeypatch, capsys, "sessions", "list", "--json")[1]) == []


def test_users_list_json_is_an_array_of_objects(config_file, monkeypatch, capsys):
    run(monkeypatch, capsys, "users", "add", "erin", "--role", "ops", "--password-stdin",
        stdin=PASSWORD + "\n")  # fmt: skip
    code, out, _ = run(monkeypatch, capsys, "users", "list", "--json")
    assert code == 0
    assert json.loads(out) == [{"name": "erin", "email": "", "roles": ["ops"], "state": "active"}]
