"""`gateway explain METHOD URL [--user U] [--roles a,b] [--mfa]`: which rule matches and what
the gateway would decide, so ops can test a policy before deploying it.

With `--user`, the user's roles and MFA enrollment are read from the configured store (the
user must exist; an unreachable store is a failure, exit 1); `--roles` replaces the stored
roles and `--mfa` says the MFA step is done. It reads records and never changes one."""

from __future__ import annotations

import argparse
import asyncio

from gateway.auth.mfa import ACTIVE as MFA_ENROLLED
from gateway.auth.users import Hasher, User, Users
from gateway.cli.common import EXIT_OK, fail, load
from gateway.clock import SystemClock
from gateway.config import Argon2Params, Config
from gateway.policy import Principal, explain, load_policies
from gateway.store import StoreError, open_store

__all__ = ["register"]


async def _stored(config: Config, name: str) -> tuple[User | None, bool]:
    """The user's record and whether it has an active MFA secret."""
    store = await open_store(config.store.url, base_dir=config.base_dir)
    try:
        user = await Users(store, Hasher(Argon2Params()), SystemClock()).get(name)
        if user is None:
            return None, False
        return user, await store.get(MFA_ENROLLED, user.key) is not None
    finally:
        await store.close()


def _principal(config: Config, args: argparse.Namespace) -> Principal | str:
    """The principal to decide for, or the message of why there is none."""
    if not args.user:
        return Principal.anonymous()
    try:
        user, enrolled = asyncio.run(_stored(config, args.user))
    except (StoreError, OSError) as exc:
        return f"cannot read user {args.user!r}: store unreachable ({type(exc).__name__})"
    if user is None:
        return f"no such user: {args.user}"
    if args.roles is not None:
        roles = frozenset(r.strip() for r in args.roles.split(",") if r.strip())
    else:
        roles = frozenset(user.roles)
    if user.disabled:
        print(f"note:      {user.username} is disabled: the gateway refuses every sign-in")
    level = "mfa" if args.mfa else "password"
    return Principal(
        user=user.username, roles=roles, auth_level=level, mfa_enabled=enrolled or args.mfa
    )


def cmd_explain(args: argparse.Namespace) -> int:
    config = load(args)
    policy = load_policies(
        list(config.policies),
        base_dir=config.base_dir,
        default_access=config.default_access,
        case_insensitive_paths=config.policy_options.case_insensitive_paths,
    )
    principal = _principal(config, args)
    if isinstance(principal, str):
        return fail(principal)
    print(
        explain(
            policy,
            args.method.upper(),
            args.url,
            principal=principal,
            client_ip=args.ip,
            mfa_enforce=config.mfa.enforce,
        )
    )
    return EXIT_OK


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = verbs.add_parser("explain", parents=[common], help="show the rule and decision for a URL")
    p.add_argument("method")
    p.add_argument("url", help="a path or a full URL")
    p.add_argument("--user", help="decide as this (signed-in) user, roles and MFA from the store")
    p.add_argument("--roles", help="comma-separated roles, instead of the user's stored ones")
    p.add_argument("--mfa", action="store_true", help="the user has completed the MFA step")
    p.add_argument("--ip", default="127.0.0.1", help="client IP for `networks` rules")
    p.set_defaults(func=cmd_explain)
