"""The account layer's parts, built once at start-up and kept in `gw.services["auth"]`.

`install()` is called by `gateway.startup.assemble.build()` after the store is open: it makes the
hasher on the worker's hashing pool (and its dummy hash, off the loop), the users and sessions
services, the audit writer, and the `password_checks` hook list that plugins append to.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.audit import Audit
from gateway.auth.lockout import Regulator
from gateway.auth.mfa import MfaService, settings_of
from gateway.auth.sessions import CookieSettings, Sessions
from gateway.auth.users import Hasher, HashPool, Users
from gateway.clock import Clock
from gateway.config import Config
from gateway.crypto.keyring import Keyring
from gateway.store.base import Store

__all__ = ["Auth", "AUTH", "install", "make_auth"]

AUTH = "auth"


@dataclass(slots=True)
class Auth:
    users: Users
    sessions: Sessions
    audit: Audit
    lockout: Regulator
    mfa: MfaService


def make_auth(
    config: Config,
    store: Store,
    clock: Clock,
    keyring: Keyring | None = None,
    *,
    pool: HashPool | None = None,
) -> Auth:
    """The account layer; Argon2 runs on `pool` (a serving worker's), else the shared one."""
    hasher = Hasher(config.passwords.argon2, pool)
    users = Users(store, hasher, clock, min_length=config.passwords.min_length)
    sessions = Sessions(
        store,
        clock,
        CookieSettings.from_config(config),
        idle=config.session.idle_timeout,
        absolute=config.session.absolute_timeout,
    )
    audit = Audit.for_config(store, clock, config)
    lockout = Regulator(store, clock, config.lockout, audit=audit)
    mfa = MfaService(store, clock, users, settings_of(config.mfa), keyring)
    return Auth(users, sessions, audit, lockout, mfa)


async def install(
    services: dict[str, object],
    config: Config,
    store: Store,
    clock: Clock,
    keyring: Keyring | None = None,
    *,
    pool: HashPool | None = None,
) -> Auth:
    auth = make_auth(config, store, clock, keyring, pool=pool)
    await auth.users.hasher.dummy()
    services[AUTH] = auth
    # The plugin hook point: async callables (username, password) -> error string or None.
    services["password_checks"] = auth.users.checks
    return auth
