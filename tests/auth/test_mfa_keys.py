"""Operator actions on MFA: `keys rewrap` reseals TOTP secrets under the new KEK (after which
the old KEK can go and MFA still works), `keys status` counts what is left to rewrap, and
`users reset-mfa` makes the user enroll again."""

from __future__ import annotations

import asyncio
import io
import sys

from gateway.cli import main
from gateway.crypto.keyring import generate_kek
from tests.auth.mfa_support import challenge, code, enroll, enrolled_gateway, login, write_policy

OLD = {"active": "old", "kek": {"old": "env:TEST_KEK_OLD"}}
BOTH = {"active": "new", "kek": {"old": "env:TEST_KEK_OLD", "new": "env:TEST_KEK_NEW"}}
NEW = {"active": "new", "kek": {"new": "env:TEST_KEK_NEW"}}


def _cli(agw, monkeypatch, capsys, keys: dict | None, *argv: str) -> tuple[int, str]:
    path = agw.config.base_dir / "gateway.yaml"
    text = f"upstream: {{url: 'http://127.0.0.1:9'}}\nstore: {{url: '{agw.config.store.url}'}}\n"
    if keys is not None:
        refs = ", ".join(f"{k}: '{v}'" for k, v in keys["kek"].items())
        text += f"keys: {{active: {keys['active']}, kek: {{{refs}}}}}\n"
    path.write_text(text)
    monkeypatch.setenv("GATEWAY_CONFIG", str(path))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    status = main(list(argv))
    return status, capsys.readouterr().out


async def test_rewrap_reseals_mfa_secrets_and_old_kek_can_be_removed(
    make_gateway, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TEST_KEK_OLD", generate_kek())
    monkeypatch.setenv("TEST_KEK_NEW", generate_kek())
    first, secret, _ = await enrolled_gateway(
        make_gateway, tmp_path, keys=OLD, mfa={"enforce": "all"}
    )
    before = await first.auth.users.store.get("mfa", "alice")
    status, out = await asyncio.to_thread(_cli, first, monkeypatch, capsys, BOTH, "keys", "status")
    assert status == 0 and "need rewrap: 1" in out.splitlines()[-1]
    status, out = await asyncio.to_thread(_cli, first, monkeypatch, capsys, BOTH, "keys", "rewrap")
    assert status == 0 and "rewrapped 1;" in out.splitlines()[-1]
    assert await first.auth.users.store.get("mfa", "alice") != before
    status, out = await asyncio.to_thread(_cli, first, monkeypatch, capsys, BOTH, "keys", "status")
    assert "need rewrap: 0" in out.splitlines()[-1]
    # A gateway that only has the new KEK: the same secret still verifies.
    second = await make_gateway(keys=NEW, mfa={"enforce": "all"})
    second.clock.set(first.clock.now() + 60)
    async with second.client() as s:
        assert await login(second, s) == {"status": "mfa_required"}
        assert await challenge(second, s, code=code(second, secret)) == (
            200,
            {"status": "authenticated"},
        )
    # The first gateway, with only the old KEK, can no longer open it: fails closed.
    async with first.client() as s:
        await login(first, s)
        first.clock.set(second.clock.now() + 60)
        assert (await challenge(first, s, code=code(first, secret)))[0] == 503


async def test_reset_mfa_cli_makes_the_user_enroll_again(
    make_gateway, tmp_path, monkeypatch, capsys
):
    write_policy(tmp_path)
    agw = await make_gateway(mfa={"enforce": "all"})
    await agw.add_user()
    await agw.add_user("alice:x")  # a name that starts like alice's keys is left alone
    for name in ("alice", "alice:x"):
        async with agw.client() as s:
            await login(agw, s, name)
            await enroll(agw, s)
    status, out = await asyncio.to_thread(
        _cli, agw, monkeypatch, capsys, None, "users", "reset-mfa", "alice"
    )
    assert status == 0 and "MFA reset" in out
    async with agw.client() as s:
        assert await login(agw, s) == {"status": "mfa_enrollment_required"}
        await enroll(agw, s)  # enrolls afresh
    async with agw.client() as s:
        assert await login(agw, s, "alice:x") == {"status": "mfa_required"}
    assert await agw.auth.mfa.codes_left("alice:x") == 10
