"""User records in the store and the Argon2id password hashing behind them.

Owns the record format (kind "user", key = the NFKC-normalized, casefolded username, value a
JSON object), the password rules (length only, NIST 800-63B, plus the `password_checks` plugin
hooks) and login verification with a dummy hash so that unknown, disabled and known users cost
the same. Argon2 always runs on its own threads (`HashPool`), never on the event loop, and on
cores of its own where the machine has more than one (`HashingPlan`). Never logs or returns a
password or a hash to a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import threading
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.clock import Clock
from gateway.config import Argon2Params
from gateway.store.base import Store

__all__ = [
    "HashPool",
    "Hasher",
    "HashingPlan",
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


# -- where Argon2 runs ----------------------------------------------------------------------
# Argon2 is CPU- and memory-bound by design, and a burst of logins must not slow the proxied
# requests. The decision, with no setting to make (HashingPlan.for_cores):
# - More than one core usable by the process: the hashing threads are pinned to the last
#   quarter of those cores (at least one; 1 of 2, 1 of 4, 2 of 8) and run at a lower priority
#   (nice +10). Both are per-thread attributes on Linux, so only the hashing threads change:
#   a hash never runs on the other cores, which stay with the event loop, the SQLite thread
#   and the rest of the process.
# - The event loop is not pinned. When the serving cores are busy it may borrow a hashing
#   core, and there the lower priority lets it preempt a hash at once. Pinning the loop away
#   from the hashing cores would gain no latency and cost proxy throughput whenever no login
#   runs: with `workers: 2` on 2 cores both workers would share one core.
# - One thread per hashing core: Argon2 is CPU-bound, so more threads do not verify faster;
#   they take memory_cost each and thrash the caches (20 threads on 2 cores verified ~25%
#   slower than 2 here).
# - `workers: N`: the plan derives only from the cores the process may use, the same in every
#   worker, so every worker pins its threads to the same hashing cores. All workers together
#   never hash on more than those cores, the kernel shares them between the workers that have
#   logins to verify, and a worker that receives a whole burst (SO_REUSEPORT spreads
#   connections, not logins) still uses all of them. At most N x threads hashes (N x threads x
#   memory_cost of memory) run at once; the others wait in their worker's queue.
# - One core: nothing to separate; one thread, at the lower priority, so a hash still yields
#   to the event loop. (Elsewhere than Linux the pinning and priority are skipped.)
HASH_NICE = 10


@dataclass(frozen=True, slots=True)
class HashingPlan:
    """Where the Argon2 threads run: the cores they are pinned to (none: not pinned), how many
    there are, and how much lower their priority is than the rest of the process."""

    cores: frozenset[int]
    threads: int
    nice: int = HASH_NICE

    @classmethod
    def for_cores(cls, available: Iterable[int]) -> HashingPlan:
        cores = sorted(available)
        if len(cores) < 2:
            return cls(frozenset(), 1)
        share = max(1, len(cores) // 4)
        return cls(frozenset(cores[-share:]), share)

    @classmethod
    def for_this_process(cls) -> HashingPlan:
        """The plan for the cores this process may run on (taskset, cgroup cpusets)."""
        try:
            available: Iterable[int] = os.sched_getaffinity(0)
        except (AttributeError, OSError):
            available = range(os.cpu_count() or 1)
        return cls.for_cores(available)

    def enter(self) -> None:
        """Run by each hashing thread as it starts: pin it and lower its priority (both apply
        to the calling thread only on Linux)."""
        if self.cores:
            with contextlib.suppress(AttributeError, OSError):
                os.sched_setaffinity(0, self.cores)
        if self.nice:
            with contextlib.suppress(AttributeError, OSError):
                tid = threading.get_native_id()
                now = os.getpriority(os.PRIO_PROCESS, tid)
                os.setpriority(os.PRIO_PROCESS, tid, min(19, now + self.nice))

    def public(self) -> dict[str, object]:
        return {"cores": sorted(self.cores), "threads": self.threads, "nice": self.nice}


class HashPool:
    """The threads Argon2 runs on, placed by a `HashingPlan`; they start on first use."""

    def __init__(self, plan: HashingPlan) -> None:
        self.plan = plan
        self._executor = ThreadPoolExecutor(
            max_workers=plan.threads, thread_name_prefix="argon2", initializer=plan.enter
        )

    async def run(self, fn: Callable[..., object], *args: object) -> object:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def shutdown(self) -> None:
        """Stop taking work; queued hashes are dropped, a running one finishes in its thread
        (never waited for on the event loop)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


_shared: HashPool | None = None


def shared_pool() -> HashPool:
    """The process-wide pool of a Hasher built without one (CLI verbs, scripts)."""
    global _shared
    if _shared is None:
        _shared = HashPool(HashingPlan.for_this_process())
    return _shared


class Hasher:
    """Argon2id with the configured parameters; every call runs in the Argon2 thread pool
    (`pool`, else the process-wide one)."""

    def __init__(self, params: Argon2Params, pool: HashPool | None = None) -> None:
        self.pool = pool
        self._ph = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
            type=Type.ID,
        )
        self._dummy: str | None = None

    async def _run(self, fn: Callable[..., object], *args: object) -> object:
        return await (self.pool or shared_pool()).run(fn, *args)

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
