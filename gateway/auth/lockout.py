"""Brute-force regulation: per-account and per-IP attempt counters and the account lock
(DESIGN.md section 11, docs/lockout.md).

Every login attempt first *reserves* a slot with `Regulator.reserve(account, ip)`, before any
user lookup or password hash: the account's and the client IP's window counters are incremented
atomically in the store (shared by every gateway instance), so N concurrent wrong guesses cost
at most `max_failures` Argon2 verifications. The account is the normalized submitted username,
whether or not such a user exists, so the answers do not reveal which accounts exist.
Password, TOTP and backup-code answers all count on this one account counter. A wrong answer
calls `failed()`: the reservation stays counted, the failure is counted on its own counter,
and the answered failure that reaches `max_failures` sets the lock (attempts still in flight
do not count towards it). A factor passed with another still to come gives its reservation back
(`released()`), a completed sign-in resets the count (`succeeded()`). An attempt refused
because others are still in flight gives its slots back too (the account's and the IP's), so
concurrent *correct* answers can never lock an account nor use up their address's limit.

Store layout (counters cannot be deleted, only expire, so resets go through a generation):
    value   "lock"/ACCOUNT       -> b"<until epoch seconds>", ttl = lockout.duration
    value   "lockgen"/ACCOUNT    -> b"<n>"   the account counter's generation
    counter "lockfail"/ACCOUNT:N -> attempts of generation N over lockout.window
    counter "lockbad"/ACCOUNT:N  -> answered failures of generation N over lockout.window
    value   "ipgen"/IP           -> b"<n>"   the IP counter's generation
    counter "lockip"/IP:N        -> attempts from IP over lockout.window, minus the ones that
                                    succeeded or were refused by an account's count
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.audit import Audit
from gateway.auth.users import normalize_username
from gateway.clock import Clock
from gateway.config import Lockout
from gateway.http.errors import TooManyRequests
from gateway.http.exchange import Exchange
from gateway.metrics import LOCKOUTS
from gateway.store.base import Store

__all__ = ["LockState", "Regulator", "Reservation", "account_key"]

LOCK, GEN, FAIL, BAD = "lock", "lockgen", "lockfail", "lockbad"
IPGEN, IPFAIL = "ipgen", "lockip"
_MAX_KEY = 256


def account_key(username: str) -> str:
    """The counter key of a submitted username: the users.py store key, bounded in length."""
    return normalize_username(username)[:_MAX_KEY]


def _int(raw: bytes | None) -> int:
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def _float(raw: bytes | None) -> float:
    try:
        return float(raw) if raw is not None else 0.0
    except ValueError:
        return 0.0


@dataclass(frozen=True, slots=True)
class Reservation:
    """One counted attempt: the counter keys it was counted on."""

    account: str
    key: str
    ip_key: str


@dataclass(frozen=True, slots=True)
class LockState:
    locked_until: float | None
    attempts: int
    window_left: float

    def public(self) -> dict[str, object]:
        return {
            "locked": self.locked_until is not None,
            "locked_until": self.locked_until,
            "failed_attempts": self.attempts,
        }


class Regulator:
    def __init__(
        self, store: Store, clock: Clock, settings: Lockout, *, audit: Audit | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.audit = audit

    # -- the login path ----------------------------------------------------------------------
    async def reserve(self, account: str, ip: str, *, ex: Exchange | None = None) -> Reservation:
        """Count one attempt for `account` (normalized) and `ip`; raise TooManyRequests when the
        account is locked or either counter is over its limit. Call before any user lookup."""
        s = self.settings
        left = await self._lock_left(account)
        if left > 0:
            raise TooManyRequests("account_locked", retry_after=left)
        ip_key = await self._ip_counter(ip)
        ip_count, ip_ttl = await self.store.incr(IPFAIL, ip_key, s.window)
        if ip_count > s.ip_max_failures:
            if ip_count == s.ip_max_failures + 1:
                LOCKOUTS.labels("ip").inc()
            raise TooManyRequests("ip_limited", retry_after=ip_ttl)
        key = f"{account}:{await self._gen(GEN, account)}"
        count, _ = await self.store.incr(FAIL, key, s.window)
        if count > s.max_failures:
            # Over the limit: either real failures (then the lock is set, or is being set by
            # the failure that reached it) or other attempts still being verified (the limit
            # on one account's concurrent logins, docs/lockout.md). This one is refused and
            # gives both its slots back: it reaches no hash, so it is no failure of the IP's
            # either (else one client's parallel logins of one account would use up the
            # limit of every user behind the same address).
            await self._give_back(key, ip_key)
            left = await self._lock_left(account)
            raise TooManyRequests("account_locked", retry_after=left or 1.0)
        # A lock set (and the generation bumped) since the first check: this request may have
        # counted on the new generation, so look again before letting it reach a hash, and
        # give the slots back (else it stays counted on the count that starts after the lock).
        left = await self._lock_left(account)
        if left > 0:
            await self._give_back(key, ip_key)
            raise TooManyRequests("account_locked", retry_after=left)
        return Reservation(account, key, ip_key)

    async def failed(self, account: str, *, ex: Exchange | None = None) -> None:
        """A wrong answer (password, TOTP or backup code): its reservation stays counted, and
        the answered failure that brings the failure count to `max_failures` sets the lock."""
        if await self._lock_left(account) > 0:
            return  # locked meanwhile: not counted on the fresh generation the lock started
        # Answered failures have their own counter: the reservation count also holds attempts
        # still in flight (maybe right answers), which must not bring the lock forward.
        key = f"{account}:{await self._gen(GEN, account)}"
        count, _ = await self.store.incr(BAD, key, self.settings.window)
        if count >= self.settings.max_failures:
            await self._lock(account, ex)

    async def released(self, reservation: Reservation) -> None:
        """A right answer to one factor with another still to come (password before TOTP):
        give the reservation back without forgetting the failures counted so far."""
        if (await self.store.count(FAIL, reservation.key))[0] > 0:
            await self.store.incr(FAIL, reservation.key, self.settings.window, -1)
        await self._give_back_ip(reservation.ip_key)

    async def succeeded(self, account: str, ip: str) -> None:
        """A completed sign-in: start the account's count afresh and give the IP its slot back."""
        await self._bump(GEN, account)
        await self._give_back_ip(await self._ip_counter(ip))

    async def _give_back(self, key: str, ip_key: str) -> None:
        """Undo a reservation that was refused after both its counts were taken."""
        await self.store.incr(FAIL, key, self.settings.window, -1)
        await self._give_back_ip(ip_key)

    async def _give_back_ip(self, key: str) -> None:
        if (await self.store.count(IPFAIL, key))[0] > 0:
            await self.store.incr(IPFAIL, key, self.settings.window, -1)

    # -- admin -------------------------------------------------------------------------------
    async def state(self, account: str) -> LockState:
        left = await self._lock_left(account)
        gen = await self._gen(GEN, account)
        # Answered failures, not attempts: a reservation still in flight may be a right answer.
        count, ttl = await self.store.count(BAD, f"{account}:{gen}")
        until = self.clock.now() + left if left > 0 else None
        return LockState(until, count, ttl)

    async def unlock(self, account: str) -> bool:
        """Clear the lock and the failure count. True if a lock was active."""
        was_locked = await self._lock_left(account) > 0
        await self.store.delete(LOCK, account)
        await self._bump(GEN, account)
        return was_locked

    async def unlock_ip(self, ip: str) -> int:
        """Reset an IP's counter; returns the count it had."""
        count, _ = await self.store.count(IPFAIL, await self._ip_counter(ip))
        await self._bump(IPGEN, ip)
        return count

    # -- internals ---------------------------------------------------------------------------
    async def _lock_left(self, account: str) -> float:
        until = _float(await self.store.get(LOCK, account))
        return max(0.0, until - self.clock.now())

    async def _ip_counter(self, ip: str) -> str:
        return f"{ip}:{await self._gen(IPGEN, ip)}"

    async def _gen(self, kind: str, key: str) -> int:
        return _int(await self.store.get(kind, key))

    async def _bump(self, kind: str, key: str) -> None:
        for _ in range(8):
            raw = await self.store.get(kind, key)
            if await self.store.compare_and_set(kind, key, raw, str(_int(raw) + 1).encode()):
                return
        # Lost every race: others bumped it meanwhile, which resets the count just the same.

    async def _lock(self, account: str, ex: Exchange | None) -> float:
        """Set the lock unless one is active; exactly one caller wins and reports it."""
        duration = self.settings.duration
        now = self.clock.now()
        raw = await self.store.get(LOCK, account)
        if _float(raw) > now:
            return _float(raw) - now
        until = now + duration
        if await self.store.compare_and_set(LOCK, account, raw, repr(until).encode(), duration):
            LOCKOUTS.labels("account").inc()
            # A fresh count once the lock ends (the window may outlast the lock).
            await self._bump(GEN, account)
            if self.audit is not None:
                await self.audit.record(
                    "login.locked", user=account[:64], outcome="locked", ex=ex, scope="account"
                )
            return duration
        return max(1.0, await self._lock_left(account))
