"""Admin verbs: `gateway users ...` and `gateway sessions ...` (DESIGN.md section 7).

Each verb opens the configured store, does one thing, writes an audit event and exits 0, or 1
with a message naming what failed. Passwords come from `--password-stdin` or a getpass prompt,
never from argv, and are never printed. Disabling or deleting a user and setting its password
end all of its sessions. `unlock NAME` lifts the account's lockout and resets its failure count
(gateway/auth/lockout.py), `unlock --ip ADDR` resets a client IP's counter, and `reset-mfa`
clears every MFA record of the user (`gateway.auth.mfa.reset`): the next sign-in enrolls again.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace

from gateway.auth.mfa import reset as reset_mfa
from gateway.auth.service import AUTH, Auth, make_auth
from gateway.auth.users import User, UserExists, UserNotFound, normalize_username
from gateway.cli.common import EXIT_FAILED, EXIT_OK, fail, load, print_table
from gateway.clock import SystemClock
from gateway.crypto.datakeys import shred
from gateway.startup.plugins import PluginLoadError, PluginStartError, open_plugins
from gateway.store import StoreError, describe_failure, open_store

__all__ = ["register"]

Action = Callable[[Auth, argparse.Namespace], Awaitable[int]]


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        config = load(args)
        if action is users_delete and not _confirm_delete(args):
            print("not deleted")
            return EXIT_FAILED

        async def main() -> int:
            store = await open_store(config.store.url, base_dir=config.base_dir)
            try:
                auth = make_auth(config, store, SystemClock())
                # Plugins' password checks and audit observers apply here as in the gateway.
                services = {"store": store, AUTH: auth}
                hooks = await open_plugins(config, services, SystemClock())
                try:
                    return await action(auth, args)
                finally:
                    await hooks.stop()
            finally:
                await store.close()

        try:
            return asyncio.run(main())
        except (UserNotFound, KeyError):
            return fail(f"no such user: {getattr(args, 'name', '')}")
        except UserExists:
            return fail(f"user exists already: {args.name}")
        except ValueError as exc:
            return fail(str(exc))
        except StoreError as exc:
            return fail(describe_failure(config.store.url, exc))
        except (PluginLoadError, PluginStartError) as exc:
            return fail(str(exc))

    return command


def _confirm_delete(args: argparse.Namespace) -> bool:
    """Ask only on a terminal; scripts (no TTY) and `--yes` go ahead."""
    if args.yes or not sys.stdin.isatty():
        return True
    answer = input(f"Delete user {args.name} and end its sessions? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    first = getpass.getpass("New password: ")
    if getpass.getpass("Repeat it: ") != first:
        raise ValueError("the passwords do not match")
    return first


def _row(user: User) -> dict[str, object]:
    state = "disabled" if user.disabled else "active"
    if user.must_change_password:
        state += ",must-change-password"
    return {"name": user.username, "email": user.email, "roles": list(user.roles), "state": state}


async def users_add(auth: Auth, args: argparse.Namespace) -> int:
    password = _read_password(args)
    user = await auth.users.add(
        args.name,
        password,
        email=args.email or "",
        roles=args.role or (),
        must_change_password=args.must_change_password,
    )
    await auth.audit.record("user.created", user=user.username, outcome="created")
    print(f"created {user.username}")
    return EXIT_OK


USER_COLUMNS = (("name", "NAME"), ("email", "EMAIL"), ("roles", "ROLES"), ("state", "STATE"))
SESSION_COLUMNS = (
    ("id", "ID"),
    ("user", "USER"),
    ("auth_level", "LEVEL"),
    ("ip", "ADDRESS"),
    ("created", "CREATED"),
    ("last_seen", "LAST SEEN"),
)


async def users_list(auth: Auth, args: argparse.Namespace) -> int:
    rows = [_row(user) for user in sorted(await auth.users.list(), key=lambda u: u.key)]
    print_table(rows, USER_COLUMNS, as_json=args.json, empty="no users")
    return EXIT_OK


async def users_show(auth: Auth, args: argparse.Namespace) -> int:
    user = await auth.users.require(args.name)
    data = user.public()
    data["sessions"] = len(await auth.sessions.of_user(user.key))
    data["mfa_enabled"] = await auth.mfa.enabled(user.key)
    data["lockout"] = (await auth.lockout.state(user.key)).public()
    print(json.dumps(data, indent=2))
    return EXIT_OK


async def users_passwd(auth: Auth, args: argparse.Namespace) -> int:
    user = await auth.users.require(args.name)
    user = await auth.users.set_password(
        user, _read_password(args), must_change=args.must_change_password
    )
    ended = await auth.sessions.end_all(user.key)
    await auth.audit.record(
        "password.changed", user=user.username, outcome="set_by_admin", sessions_ended=str(ended)
    )
    print(f"password set for {user.username}; {ended} session(s) ended")
    return EXIT_OK


async def _set_disabled(auth: Auth, args: argparse.Namespace, disabled: bool) -> int:
    user = await auth.users.require(args.name)
    await auth.users.save(replace(user, disabled=disabled))
    ended = await auth.sessions.end_all(user.key) if disabled else 0
    event = "user.disabled" if disabled else "user.enabled"
    await auth.audit.record(event, user=user.username, outcome="ok", sessions_ended=str(ended))
    print(f"{user.username} {'disabled' if disabled else 'enabled'}")
    return EXIT_OK


async def users_disable(auth: Auth, args: argparse.Namespace) -> int:
    return await _set_disabled(auth, args, True)


async def users_enable(auth: Auth, args: argparse.Namespace) -> int:
    return await _set_disabled(auth, args, False)


async def users_delete(auth: Auth, args: argparse.Namespace) -> int:
    user = await auth.users.require(args.name)
    await auth.users.delete(user.key)
    ended = await auth.sessions.end_all(user.key)
    await _clear(auth, "lock", user.key)
    await reset_mfa(auth.users.store, user.key)
    shredded = await shred(
        auth.audit.store, f"user:{user.username}"
    )  # its ciphertext is now unreadable
    await auth.audit.record(
        "user.deleted", user=user.username, outcome="deleted", keys_destroyed=str(shredded)
    )
    print(f"deleted {user.username}; {ended} session(s) ended")
    return EXIT_OK


async def users_set_roles(auth: Auth, args: argparse.Namespace) -> int:
    user = await auth.users.require(args.name)
    roles = tuple(dict.fromkeys(r for r in args.roles if r))
    await auth.users.save(replace(user, roles=roles))
    await auth.audit.record("user.roles_changed", user=user.username, outcome=",".join(roles))
    print(f"{user.username}: roles {','.join(roles) or '(none)'}")
    return EXIT_OK


async def _clear(auth: Auth, kind: str, key: str) -> int:
    store = auth.users.store
    cleared = int(await store.delete(kind, key))
    for found, _ in await store.scan(kind, key + ":"):
        cleared += int(await store.delete(kind, found))
    return cleared


async def users_unlock(auth: Auth, args: argparse.Namespace) -> int:
    """`users unlock NAME` clears an account's lock and failure count (the name need not be a
    user: unknown names are counted and locked too); `users unlock --ip ADDR` resets the
    per-IP counter."""
    if args.ip:
        try:
            ip = str(ipaddress.ip_address(args.ip))
        except ValueError:
            return fail(f"not an IP address: {args.ip}")
        had = await auth.lockout.unlock_ip(ip)
        await auth.audit.record("ip.unlocked", user=None, outcome=f"reset_{had}", ip_address=ip)
        print(f"{ip}: counter reset ({had} attempt(s) in the window)")
        return EXIT_OK
    if not args.name:
        return fail("give a NAME or --ip ADDR")
    key = normalize_username(args.name)
    was_locked = await auth.lockout.unlock(key)
    await _clear(auth, "lock", key)  # any older lock records under the same key
    await auth.audit.record(
        "user.unlocked", user=args.name, outcome="unlocked" if was_locked else "not_locked"
    )
    print(f"{args.name}: {'unlocked' if was_locked else 'was not locked'}; failure count reset")
    return EXIT_OK


async def users_reset_mfa(auth: Auth, args: argparse.Namespace) -> int:
    user = await auth.users.require(args.name)
    cleared = await reset_mfa(auth.users.store, user.key)
    await auth.audit.record("mfa.reset", user=user.username, outcome=f"cleared_{cleared}")
    print(f"{user.username}: MFA reset ({cleared} record(s) cleared)")
    return EXIT_OK


async def sessions_list(auth: Auth, args: argparse.Namespace) -> int:
    if args.user:
        records = await auth.sessions.of_user(normalize_username(args.user))
    else:
        records = await auth.sessions.all()
    rows = [
        {
            "id": r.public_id,
            "user": r.user,
            "auth_level": r.auth_level,
            "ip": r.ip,
            "created": r.created,
            "last_seen": r.last_seen,
        }
        for r in records
    ]
    print_table(
        rows,
        SESSION_COLUMNS,
        as_json=args.json,
        times=("created", "last_seen"),
        empty="no sessions",
    )
    return EXIT_OK


async def sessions_revoke(auth: Auth, args: argparse.Namespace) -> int:
    for record in await auth.sessions.all():
        if record.public_id == args.id:
            await auth.sessions.end(record)
            await auth.audit.record("session.revoked", user=record.user, outcome="revoked_by_admin")
            print("revoked")
            return EXIT_OK
    return fail("no such session")


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    users = verbs.add_parser("users", parents=[common], help="manage user accounts")
    uv = users.add_subparsers(dest="users_verb", required=True, metavar="ACTION")

    def verb(
        name: str, action: Action, help_text: str, *, named: bool = True
    ) -> argparse.ArgumentParser:
        p = uv.add_parser(name, parents=[common], help=help_text)
        if named:
            p.add_argument("name", metavar="NAME")
        p.set_defaults(func=_run(action))
        return p

    add = verb("add", users_add, "create a user")
    add.add_argument("--email", default="")
    add.add_argument("--role", action="append", metavar="R")
    for p in (add, verb("passwd", users_passwd, "set a user's password (ends its sessions)")):
        p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        p.add_argument("--must-change-password", action="store_true")
    verb("list", users_list, "list users", named=False).add_argument(
        "--json", action="store_true", help="a JSON array, for scripts"
    )
    verb("show", users_show, "show one user")
    verb("disable", users_disable, "disable a user (ends its sessions)")
    verb("enable", users_enable, "enable a user")
    verb("delete", users_delete, "delete a user (ends its sessions)").add_argument(
        "--yes", action="store_true", help="do not ask for confirmation"
    )
    verb("set-roles", users_set_roles, "replace a user's roles").add_argument(
        "roles", nargs="*", metavar="ROLE"
    )
    unlock = verb("unlock", users_unlock, "clear a user's lockout, or an IP's", named=False)
    unlock.add_argument("name", metavar="NAME", nargs="?", default=None)
    unlock.add_argument("--ip", default=None, metavar="ADDR", help="reset this client IP instead")
    verb("reset-mfa", users_reset_mfa, "remove a user's MFA enrollment")

    sessions = verbs.add_parser("sessions", parents=[common], help="list and revoke sessions")
    sv = sessions.add_subparsers(dest="sessions_verb", required=True, metavar="ACTION")
    listing = sv.add_parser("list", parents=[common], help="list live sessions")
    listing.add_argument("--user", default=None)
    listing.add_argument("--json", action="store_true", help="a JSON array, for scripts")
    listing.set_defaults(func=_run(sessions_list))
    revoke = sv.add_parser("revoke", parents=[common], help="end one session by its id")
    revoke.add_argument("id", metavar="ID")
    revoke.set_defaults(func=_run(sessions_revoke))
