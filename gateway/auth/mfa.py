"""TOTP enrollment, verification with replay protection, and backup codes (issue 8).

Store layout (all keyed by the user's store key, so `users reset-mfa` and `users delete` clear
them with `reset()`):
    "mfa"/KEY          -> JSON {"sealed": b64, "since": t}   the active secret (enrolled)
    "mfapending"/KEY   -> JSON {"sealed": b64, "since": t}   a secret shown, not yet confirmed
    "mfastep"/KEY      -> b"<step>"  the last accepted TOTP time step (advanced by CAS)
    "mfacode"/KEY:ID   -> Argon2id hash of one unused backup code
Secrets are sealed with `gateway.crypto.sealed` (HKDF from the KEK, AES-GCM, AAD binding the
user key and the kek id), never stored in clear. A code whose step is not after the last
accepted one is refused, and the step only moves by compare-and-set, so two instances on one
store cannot both accept the same code. A backup code `XXXX-XXXX-XXXX` names its own record by
its first group, so a wrong code costs one Argon2 verification at most; using one deletes its
record by compare-and-set, so of two concurrent uses exactly one succeeds. Argon2 runs on the
users' pool. Never logs or returns a secret, a code or a hash.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field

from gateway.auth import totp
from gateway.auth.totp import TotpSettings
from gateway.auth.users import Users
from gateway.clock import Clock
from gateway.config import Mfa as MfaConfig
from gateway.crypto.errors import DecryptError, KeyMaterialError
from gateway.crypto.keyring import Keyring
from gateway.crypto.sealed import kek_id_of, open_sealed, reseal, seal
from gateway.store.base import Store

__all__ = [
    "ACTIVE",
    "BACKUP_CODES",
    "AlreadyEnrolled",
    "Enrollment",
    "MfaService",
    "MfaUnavailable",
    "NoPendingEnrollment",
    "SecretStatus",
    "normalize_backup_code",
    "reset",
    "rewrap_secrets",
    "secrets_status",
    "settings_of",
]

ACTIVE, PENDING, STEP, CODE = "mfa", "mfapending", "mfastep", "mfacode"
PURPOSE = "totp-secret"
PENDING_TTL = 900.0
BACKUP_CODES = 10
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})
_CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{12}$")
_CODE_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}$")
_CAS_ATTEMPTS = 8
# What reading a stored record raises when it is not JSON with a sealed secret we can parse.
_MALFORMED = (ValueError, KeyError, TypeError, binascii.Error, DecryptError)


class AlreadyEnrolled(Exception):
    """The user has an active secret; disable first."""


class NoPendingEnrollment(Exception):
    """Confirm without a (live) pending secret."""


class MfaUnavailable(Exception):
    """A stored secret cannot be opened (its KEK is gone, or the record was tampered with)."""


def settings_of(config: MfaConfig) -> TotpSettings:
    return TotpSettings(
        digits=config.digits, period=config.period, skew=config.skew, issuer=config.issuer
    )


def normalize_backup_code(code: object) -> str | None:
    """`abcd-efgh-jkmn`, with spaces or dashes anywhere and O/I/L for 0/1, to 12 characters."""
    if not isinstance(code, str) or len(code) > 40:
        return None
    compact = "".join(ch for ch in code if ch not in " -").upper().translate(_CONFUSABLE)
    return compact if _CODE.match(compact) else None


def _new_backup_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


@dataclass(frozen=True, slots=True)
class Enrollment:
    secret: bytes
    uri: str

    @property
    def secret_b32(self) -> str:
        return totp.b32(self.secret)

    @property
    def secret_grouped(self) -> str:
        """The key for manual entry in groups of four (apps ignore the spaces), so it reads
        and wraps well on a phone."""
        b32 = self.secret_b32
        return " ".join(b32[i : i + 4] for i in range(0, len(b32), 4))


@dataclass(slots=True)
class SecretStatus:
    by_kek: dict[str, int] = field(default_factory=dict)
    needs_rewrap: int = 0
    rewrapped: int = 0
    failed: list[str] = field(default_factory=list)


async def reset(store: Store, user_key: str) -> int:
    """Forget every MFA record of a user (CLI reset-mfa, user deletion). Returns the count."""
    cleared = 0
    for kind in (ACTIVE, PENDING, STEP):
        cleared += int(await store.delete(kind, user_key))
    for key in await _code_keys(store, user_key):
        cleared += int(await store.delete(CODE, key))
    return cleared


async def _code_keys(store: Store, user_key: str) -> list[str]:
    prefix = user_key + ":"
    # Another user's key may start with ours plus ":"; only KEY:ID with a well-formed id is ours.
    return [k for k, _ in await store.scan(CODE, prefix) if _CODE_ID.match(k[len(prefix) :])]


class MfaService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        users: Users,
        settings: TotpSettings,
        keyring: Keyring | None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.users = users
        self.settings = settings
        self.keyring = keyring

    # -- sealed records ------------------------------------------------------------------------
    def _seal(self, user_key: str, secret: bytes) -> bytes:
        sealed = seal(secret, self._keys(), purpose=PURPOSE, owner=user_key)
        return _record({"since": self.clock.now()}, sealed)

    def _open(self, user_key: str, raw: bytes) -> bytes:
        try:
            sealed = _sealed_of(json.loads(raw))
            return open_sealed(sealed, self._keys(), purpose=PURPOSE, owner=user_key)
        except (*_MALFORMED, KeyMaterialError):
            raise MfaUnavailable("mfa secret cannot be opened") from None

    def _keys(self) -> Keyring:
        if self.keyring is None:
            raise MfaUnavailable("no keyring")
        return self.keyring

    # -- state ---------------------------------------------------------------------------------
    async def enabled(self, user_key: str) -> bool:
        return await self.store.get(ACTIVE, user_key) is not None

    async def codes_left(self, user_key: str) -> int:
        return len(await _code_keys(self.store, user_key))

    # -- enrollment ----------------------------------------------------------------------------
    async def begin(self, user_key: str, account: str) -> Enrollment:
        """A new pending secret (replacing any earlier pending one); AlreadyEnrolled if active."""
        if await self.enabled(user_key):
            raise AlreadyEnrolled()
        secret = totp.new_secret()
        await self.store.put(PENDING, user_key, self._seal(user_key, secret), ttl=PENDING_TTL)
        return Enrollment(secret, totp.provisioning_uri(secret, account, self.settings))

    async def pending(self, user_key: str, account: str) -> Enrollment | None:
        """The pending secret again (to show it after a wrong confirmation code)."""
        raw = await self.store.get(PENDING, user_key)
        if raw is None:
            return None
        secret = self._open(user_key, raw)
        return Enrollment(secret, totp.provisioning_uri(secret, account, self.settings))

    async def confirm(self, user_key: str, code: object) -> list[str] | None:
        """Activate the pending secret if `code` is right: the fresh backup codes, shown once.
        None for a wrong code; NoPendingEnrollment / AlreadyEnrolled otherwise."""
        raw = await self.store.get(PENDING, user_key)
        if raw is None:
            raise NoPendingEnrollment()
        if await self.enabled(user_key):
            raise AlreadyEnrolled()
        secret = self._open(user_key, raw)
        step = totp.matching_step(secret, _digits(code), self.clock.now(), self.settings)
        if step is None:
            return None
        # The confirming code may not be used again to pass a challenge.
        if not await self._advance(user_key, step):
            return None
        if not await self.store.put_if_absent(ACTIVE, user_key, raw):
            raise AlreadyEnrolled()
        await self.store.compare_and_set(PENDING, user_key, raw, None)
        return await self.regenerate_codes(user_key)

    async def disable(self, user_key: str) -> int:
        return await reset(self.store, user_key)

    # -- verification --------------------------------------------------------------------------
    async def verify_totp(self, user_key: str, code: object) -> bool:
        """True once per time step: the code matches within skew and its step is after the
        last accepted one (advanced atomically, shared by every instance)."""
        raw = await self.store.get(ACTIVE, user_key)
        if raw is None:
            return False
        secret = self._open(user_key, raw)
        step = totp.matching_step(secret, _digits(code), self.clock.now(), self.settings)
        if step is None:
            return False
        return await self._advance(user_key, step)

    async def _advance(self, user_key: str, step: int) -> bool:
        for _ in range(_CAS_ATTEMPTS):
            raw = await self.store.get(STEP, user_key)
            try:
                last = int(raw) if raw is not None else -1
            except ValueError:
                last = -1
            if step <= last:
                return False  # SECURITY: replay of this step or an older one
            if await self.store.compare_and_set(STEP, user_key, raw, str(step).encode()):
                return True
        return False

    # -- backup codes --------------------------------------------------------------------------
    async def regenerate_codes(self, user_key: str) -> list[str]:
        """Ten new codes replacing the old ones; the only time they exist in clear."""
        codes: dict[str, str] = {}
        while len(codes) < BACKUP_CODES:
            code = _new_backup_code()
            codes.setdefault(code[:4], code)
        hasher = self.users.hasher
        hashes = await asyncio.gather(
            *(hasher.hash(normalize_backup_code(c) or "") for c in codes.values())
        )
        for key in await _code_keys(self.store, user_key):
            await self.store.delete(CODE, key)
        for code_id, hashed in zip(codes, hashes, strict=True):
            await self.store.put(CODE, f"{user_key}:{code_id}", hashed.encode())
        return list(codes.values())

    async def use_backup_code(self, user_key: str, code: object) -> bool:
        """True if `code` is an unused backup code of the user, which is then used up. One
        Argon2 verification per call (a dummy one when the id names no code)."""
        compact = normalize_backup_code(code)
        hasher = self.users.hasher
        self.users.verifications += 1
        if compact is None:
            await hasher.burn(secrets.token_urlsafe(9))
            return False
        key = f"{user_key}:{compact[:4]}"
        stored = await self.store.get(CODE, key)
        if stored is None:
            await hasher.burn(compact)
            return False
        if not await hasher.verify(stored.decode("ascii", "replace"), compact):
            return False
        # SECURITY: the delete-if-unchanged decides which of two concurrent uses wins.
        return await self.store.compare_and_set(CODE, key, stored, None)


# -- keys ----------------------------------------------------------------------------------
async def secrets_status(store: Store, keyring: Keyring) -> SecretStatus:
    """Sealed secrets by kek id and how many are not under the active KEK (`keys status`)."""
    status = SecretStatus()
    by_kek: Counter[str] = Counter()
    for kind in (ACTIVE, PENDING):
        for _, raw in await store.scan(kind):
            kek_id = _kek_of(raw)
            by_kek[kek_id] += 1
            if kek_id != keyring.active_id:
                status.needs_rewrap += 1
    status.by_kek = dict(sorted(by_kek.items()))
    return status


async def rewrap_secrets(store: Store, keyring: Keyring) -> SecretStatus:
    """Reseal every stored secret under the active KEK (resumable, CAS per record)."""
    status = SecretStatus()
    for kind in (ACTIVE, PENDING):
        for key, raw in await store.scan(kind):
            await _rewrap_record(store, keyring, kind, key, raw, status)
    return status


async def _rewrap_record(
    store: Store, keyring: Keyring, kind: str, key: str, raw: bytes, status: SecretStatus
) -> None:
    """Reseal one record, retrying when another writer changed it meanwhile."""
    for _ in range(_CAS_ATTEMPTS):
        try:
            data = json.loads(raw)
            sealed = _sealed_of(data)
            fresh = reseal(sealed, keyring, purpose=PURPOSE, owner=key)
        except (*_MALFORMED, KeyMaterialError):  # unreadable, or its KEK is gone: left, listed
            status.failed.append(f"{kind}/{key}")
            return
        if fresh == sealed:
            return
        ttl = PENDING_TTL if kind == PENDING else None
        if await store.compare_and_set(kind, key, raw, _record(data, fresh), ttl):
            status.rewrapped += 1
            return
        current = await store.get(kind, key)
        if current is None:
            return
        raw = current


def _sealed_of(data: dict[str, object]) -> bytes:
    """The sealed secret of a stored record (parsed JSON)."""
    return base64.b64decode(data["sealed"], validate=True)  # type: ignore[arg-type]


def _record(data: dict[str, object], sealed: bytes) -> bytes:
    """A stored record: `data` with `sealed` set to the (new) sealed secret."""
    out = {"sealed": "", **data}  # `sealed` first, as records have always been written
    out["sealed"] = base64.b64encode(sealed).decode()
    return json.dumps(out, separators=(",", ":")).encode()


def _kek_of(raw: bytes) -> str:
    try:
        return kek_id_of(_sealed_of(json.loads(raw)))
    except _MALFORMED:
        return "?"


def _digits(code: object) -> str:
    """A submitted TOTP code without the spaces apps show in the middle."""
    return code.replace(" ", "") if isinstance(code, str) and len(code) <= 16 else ""
