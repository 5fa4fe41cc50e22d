"""User records in the store and the Argon2id password hashing behind them.

Owns the record format (kind "user", key = the NFKC-normalized, casefolded username, value a
JSON object), the password rules (length only, NIST 800-63B, plus the `password_checks` plugin
hooks) and login verification with a dummy hash so that unknown, disabled and known users cost
the same. Argon2 always runs in an executor, never on the event loop. Never logs or returns a
password or a hash to a client.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.clock import Clock
from gateway.config import Argon2Params
from gateway.store.base import Store

__all__ = [
    "Hasher",
    "PasswordCheck",
    "User",
    "UserExists",
    "UserNotFound",
    "Users",
    "normalize_username",
]

KIND = "user"
MAX_PASSWORD = 128
MAX_USERNAME = 64
PasswordCheck = Callable[[str, str], Awaitable[str | None]]


class UserExists(Exception):
    """A user with that (normalized) name exists already."""


class UserNotFound(Exception):
    """No user with that name."""


def normalize_username(name: str) -> str:
    """The store key of a username: case-insensitive and compatibility-normalized."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def valid_username(name: str) -> bool:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_USERNAME or name.strip() != name:
        return False
    return all(ch.isprintable() for ch in name)


@dataclass(slots=True)
class User:
    username: str
    email: str
    password_hash: str
    roles: tuple[str, ...] = ()
    disabled: bool = False
    must_change_password: bool = False
    created: float = 0.0
    last_login: float | None = None
    password_changed: float = 0.0
    # Random per account: a user deleted and added again under the same name is someone new.
    uid: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return normalize_username(self.username)

    def encode(self) -> bytes:
        data = asdict(self)
        data["roles"] = list(self.roles)
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> User:
        data = json.loads(raw)
        data["roles"] = tuple(data.get("roles", ()))
        return cls(**data)

    def public(self) -> dict[str, object]:
        """The record without its hash (CLI `show`, API)."""
        data = asdict(self)
        del data["password_hash"], data["extra"]
        data["roles"] = list(self.roles)
        return data


def parse_user(raw: bytes | None) -> User | None:
    """A stored user record, or None when absent or unreadable."""
    if raw is None:
        return None
    try:
        return User.decode(raw)
    except (ValueError, TypeError, KeyError):
        return None


# Argon2 is CPU- and memory-bound by design. Its own small pool, one thread short of the
# machine's cores, keeps a core for the event loop so proxied requests do not queue behind a
# burst of logins (and bounds the memory Argon2 can take at once).
_ARGON2_POOL = ThreadPoolExecutor(
    max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="argon2"
)


class Hasher:
    """Argon2id with the configured parameters; every call runs in the Argon2 thread pool."""

    def __init__(self, params: Argon2Params) -> None:
        self._ph = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
            type=Type.ID,
        )
        self._dummy: str | None = None

    async def _run(self, fn: Callable[..., object], *args: object) -> object:
        return await asyncio.get_running_loop().run_in_executor(_ARGON2_POOL, fn, *args)

    async def hash(self, password: str) -> str:
        return str(await self._run(self._ph.hash, password))

    async def verify(self, password_hash: str, password: str) -> bool:
        def work() -> bool:
            try:
                return self._ph.verify(password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return bool(await self._run(work))

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._ph.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def dummy(self) -> str:
        """A hash of a random password with the current parameters, made once."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(24))
        return self._dummy

    async def burn(self, password: str) -> None:
        """Spend exactly what a real verification costs (unknown or disabled users)."""
        await self.verify(await self.dummy(), password)


class Users:
    def __init__(
        self,
        store: Store,
        hasher: Hasher,
        clock: Clock,
        *,
        min_length: int = 12,
        checks: Sequence[PasswordCheck] = (),
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.clock = clock
        self.min_length = min_length
        # Plugins (e.g. a breached-password list) append to this list; shared with gw.services.
        self.checks: list[PasswordCheck] = list(checks)
        # Argon2 verifications run by verify_login (lockout tests and benchmarks read it).
        self.verifications = 0

    async def get(self, name: str) -> User | None:
        return parse_user(await self.store.get(KIND, normalize_username(name)))

    async def require(self, name: str) -> User:
        user = await self.get(name)
        if user is None:
            raise UserNotFound(name)
        return user

    async def save(self, user: User) -> None:
        await self.store.put(KIND, user.key, user.encode())

    async def list(self) -> list[User]:
        out = []
        for _, raw in await self.store.scan(KIND):
            try:
                out.append(User.decode(raw))
            except (ValueError, TypeError, KeyError):
                continue
        return out

    async def check_password(self, username: str, password: str) -> str | None:
        """Why `password` may not be used, or None. Length only, then the plugin hooks."""
        if not isinstance(password, str) or len(password) < self.min_length:
            return "too_short"
        if len(password) > MAX_PASSWORD:
            return "too_long"
        for check in self.checks:
            problem = await check(username, password)
            if problem:
                return problem
        return None

    async def add(
        self,
        username: str,
        password: str,
        *,
        email: str = "",
        roles: Sequence[str] = (),
        must_change_password: bool = False,
    ) -> User:
        if not valid_username(username):
            raise ValueError("invalid username")
        problem = await self.check_password(username, password)
        if problem:
            raise ValueError(f"password rejected: {problem}")
        now = self.clock.now()
        user = User(
            username=unicodedata.normalize("NFKC", username),
            email=email,
            password_hash=await self.hasher.hash(password),
            roles=tuple(dict.fromkeys(roles)),
            must_change_password=must_change_password,
            created=now,
            password_changed=now,
            uid=secrets.token_hex(16),
        )
        if not await self.store.put_if_absent(KIND, user.key, user.encode()):
            raise UserExists(username)
        return user

    async def set_password(self, user: User, password: str, *, must_change: bool = False) -> User:
        problem = await self.check_password(user.username, password)
        if problem:
            raise ValueError(f"password rejected: {problem}")
        updated = replace(
            user,
            password_hash=await self.hasher.hash(password),
            must_change_password=must_change,
            password_changed=self.clock.now(),
        )
        await self.save(updated)
        return updated

    async def delete(self, name: str) -> bool:
        return await self.store.delete(KIND, normalize_username(name))

    async def verify_login(self, username: object, password: object) -> User | None:
        """The user if the password is right and the account enabled; None otherwise, after the
        same Argon2 work in every case."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        user = await self.get(username) if valid_username(username) else None
        self.verifications += 1
        if user is None or user.disabled:
            await self.hasher.burn(password)
            return None
        if not await self.hasher.verify(user.password_hash, password):
            return None
        now = self.clock.now()
        if self.hasher.needs_rehash(user.password_hash):
            user = replace(user, password_hash=await self.hasher.hash(password))
        user = replace(user, last_login=now)
        await self.save(user)
        return user
