"""`gateway explain METHOD URL --user U` decides as that user really is: the roles and the MFA
enrollment stored for them (`--roles`/`--mfa` override), an unknown user or an unreachable
store is a failed command (exit 1) with a clear message, never a guess."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

import pytest

from gateway.auth import totp
from gateway.auth.service import make_auth
from gateway.cli import main
from gateway.clock import SystemClock
from gateway.config import load_config
from gateway.crypto.keyring import Keyring, generate_kek
from gateway.store import open_store
from tests.proxy.conftest import free_port

POLICY = """rules:
  - name: admin
    match: {paths: ["/admin/**"]}
    access: mfa
    roles: [admin]
  - name: app
    match: {paths: ["/app/**"]}
    access: authenticated
"""
PASSWORD = "an operator chosen passphrase"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("GW_EXPLAIN_KEK", generate_kek())
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "10-app.yaml").write_text(POLICY)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "upstream: {url: 'http://127.0.0.1:9'}\n"
        "store: {url: 'sqlite:///gw.db'}\n"
        "passwords: {argon2: {time_cost: 1, memory_cost: 1024}}\n"
        "keys: {active: a, kek: {a: 'env:GW_EXPLAIN_KEK'}}\n"
    )

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["-c", str(config), *argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    run.config = config  # type: ignore[attr-defined]
    return run


async def enroll_mfa(config_path: Path, name: str) -> None:
    """Enrollment as the gateway does it: a pending secret confirmed with a current code."""
    config = load_config(config_path)
    keyring = Keyring.from_refs(
        config.keys.active, config.keys.kek, environ=os.environ, base_dir=config.base_dir
    )
    store = await open_store(config.store.url, base_dir=config.base_dir)
    try:
        mfa = make_auth(config, store, SystemClock(), keyring).mfa
        enrollment = await mfa.begin(name, name)
        step = totp.step_of(SystemClock().now(), mfa.settings)
        assert await mfa.confirm(name, totp.code_at(enrollment.secret, step, mfa.settings))
    finally:
        await store.close()


def test_explain_uses_the_stored_roles_and_mfa_enrollment(cli):
    assert cli("users", "add", "root", "--role", "admin", "--password-stdin",
               stdin=PASSWORD + "\n")[0] == 0  # fmt: skip
    code, out, _ = cli("explain", "GET", "/admin/users", "--user", "root")
    assert code == 0
    assert "identity:  root auth_level=password roles=[admin] mfa_enabled=False" in out
    assert "decision:  mfa_enroll" in out  # an admin without MFA is sent to enroll

    asyncio.run(enroll_mfa(cli.config, "root"))
    code, out, _ = cli("explain", "GET", "/admin/users", "--user", "root")
    assert "roles=[admin] mfa_enabled=True" in out
    assert "decision:  mfa (reason=mfa_required)" in out  # enrolled: the step-up, not enroll
    code, out, _ = cli("explain", "GET", "/admin/users", "--user", "root", "--mfa")
    assert "auth_level=mfa" in out and "decision:  allow (reason=mfa)" in out

    # --roles replaces the stored roles (what if root lost admin?)
    code, out, _ = cli("explain", "GET", "/admin/users", "--user", "root", "--mfa",
                       "--roles", "viewer")  # fmt: skip
    assert "roles=[viewer]" in out and "decision:  forbidden" in out


def test_explain_for_an_unknown_user_fails(cli):
    code, out, err = cli("explain", "GET", "/app/x", "--user", "nobody", "--roles", "admin")
    assert code == 1 and "no such user: nobody" in err and "decision" not in out


def test_explain_with_an_unreachable_store_fails_with_a_clear_message(cli, tmp_path):
    text = cli.config.read_text().replace(
        "sqlite:///gw.db", f"redis://:storepw-9c1@127.0.0.1:{free_port()}/0"
    )
    cli.config.write_text(text)
    code, out, err = cli("explain", "GET", "/app/x", "--user", "root")
    assert code == 1 and "store unreachable" in err and "root" in err
    assert "decision" not in out and "Traceback" not in err and "storepw-9c1" not in err
    # Without --user there is nothing to read: the store is not needed.
    code, out, _ = cli("explain", "GET", "/app/x")
    assert code == 0 and "decision:  login" in out
