"""Helpers for the MFA tests: a policy with an `mfa` rule, enrollment over the JSON API, and
the code an authenticator app would show at the gateway's (fixed) clock."""

from __future__ import annotations

import base64
from pathlib import Path

from gateway.auth import totp
from tests.auth.conftest import PASSWORD, AuthGw

MFA_POLICY = """rules:
  - name: admin
    match: {paths: ["/admin/**"]}
    access: mfa
  - name: app
    match: {paths: ["/app/**"]}
    access: authenticated
  - name: everything
    match: {paths: ["/**"]}
    access: public
"""
SETUP = "/.gateway/mfa/setup"
CHALLENGE = "/.gateway/mfa"
JSON = {"Accept": "application/json"}


def write_policy(folder: Path) -> None:
    policies = folder / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    (policies / "00-test.yaml").write_text(MFA_POLICY)


def secret_of(b32: str) -> bytes:
    return base64.b32decode(b32 + "=" * (-len(b32) % 8))


def code(agw: AuthGw, secret: bytes, offset: int = 0) -> str:
    settings = agw.auth.mfa.settings
    return totp.code_at(secret, totp.step_of(agw.clock.now(), settings) + offset, settings)


async def login(agw: AuthGw, s, name: str = "alice", password: str = PASSWORD) -> dict:
    async with s.post(
        agw.url + "/.gateway/login", json={"username": name, "password": password}
    ) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def enroll(agw: AuthGw, s) -> tuple[bytes, list[str]]:
    """With a signed-in (or partial) client: scan, confirm, return (secret, backup codes).
    Moves the clock one step on so the confirming code's step is behind."""
    async with s.get(agw.url + SETUP, headers=JSON) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    secret = secret_of(body["secret"])
    async with s.post(agw.url + SETUP, json={"code": code(agw, secret)}) as r:
        assert r.status == 200, await r.text()
        codes = (await r.json())["backup_codes"]
    agw.clock.advance(agw.auth.mfa.settings.period)
    return secret, codes


async def enrolled_gateway(
    make_gateway, folder: Path, **overrides: object
) -> tuple[AuthGw, bytes, list[str]]:
    """The MFA policy in `folder` (the gateway's tmp_path), a gateway with `overrides`, and
    alice signed in once and enrolled: (gateway, secret, backup codes)."""
    write_policy(folder)
    agw = await make_gateway(**overrides)
    await agw.add_user()
    async with agw.client() as s:
        await login(agw, s)
        secret, codes = await enroll(agw, s)
    return agw, secret, codes


async def challenge(agw: AuthGw, s, **body: str) -> tuple[int, dict]:
    async with s.post(agw.url + CHALLENGE, json=body) as r:
        return r.status, await r.json()
