"""TOTP (RFC 6238) arithmetic on top of pyotp: which time step a submitted code belongs to.

Pure and synchronous: takes the raw secret, the time from the caller's clock and the settings,
returns the matching step or None. Replay protection (the last accepted step) lives in
`gateway.auth.mfa`, which owns the store. Codes are compared in constant time. Never logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import pyotp

__all__ = ["TotpSettings", "new_secret", "code_at", "matching_step", "provisioning_uri"]

SECRET_BYTES = 20  # 160 bits, the RFC 4226 recommendation for HMAC-SHA1


@dataclass(frozen=True, slots=True)
class TotpSettings:
    digits: int = 6
    period: int = 30
    skew: int = 1
    issuer: str = "Portcullis"


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def b32(secret: bytes) -> str:
    """The secret as authenticator apps take it (base32, no padding)."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def _otp(secret: bytes, settings: TotpSettings) -> pyotp.TOTP:
    return pyotp.TOTP(
        b32(secret), digits=settings.digits, digest=hashlib.sha1, interval=settings.period
    )


def step_of(now: float, settings: TotpSettings) -> int:
    return int(now // settings.period)


def code_at(secret: bytes, step: int, settings: TotpSettings) -> str:
    return _otp(secret, settings).generate_otp(step)


def matching_step(secret: bytes, code: str, now: float, settings: TotpSettings) -> int | None:
    """The time step within `skew` steps of `now` whose code is `code`, else None. Every
    candidate is computed and compared, so the time taken does not depend on which matched."""
    if (
        not isinstance(code, str)
        or len(code) != settings.digits
        or not (code.isascii() and code.isdigit())
    ):
        return None
    otp = _otp(secret, settings)
    current = step_of(now, settings)
    found = None
    for step in range(max(0, current - settings.skew), current + settings.skew + 1):
        if hmac.compare_digest(otp.generate_otp(step).encode(), code.encode()):
            found = step if found is None else found
    return found


def provisioning_uri(secret: bytes, account: str, settings: TotpSettings) -> str:
    return _otp(secret, settings).provisioning_uri(name=account, issuer_name=settings.issuer)
