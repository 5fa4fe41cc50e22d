"""`gateway keys generate|status|rewrap|rotate SCOPE` (DESIGN.md section 8). Never prints keys
except the fresh KEK that `generate` exists to print.

`rotate` and `rewrap` leave audit events, failures included: `key.rotated` (recorded by
DataKeys through its recorder) or `key.rotate_failed`; one `key.rewrapped` with the counts of
data keys and MFA secrets (outcome "partial" and the failed rows when some could not be
rewrapped) or `key.rewrap_failed`. Failure events carry the error's type, never key material."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from gateway.auth.audit import Audit
from gateway.auth.mfa import SecretStatus, rewrap_secrets, secrets_status
from gateway.auth.users import Hasher, Users
from gateway.cli.common import EXIT_OK, fail, load
from gateway.clock import SystemClock
from gateway.config import Argon2Params
from gateway.crypto import CryptoError, KeyMaterialError
from gateway.crypto.datakeys import DataKeys, KeyStatus, RewrapReport
from gateway.crypto.keyring import Keyring, generate_kek
from gateway.startup.audit_events import key_events, scope_user
from gateway.store import StoreError, describe_failure, open_store
from gateway.store.base import Store

_FAILED_ROWS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Keys:
    """What a `keys` verb works with: the data keys, the store and KEKs (MFA secrets), audit."""

    dk: DataKeys
    store: Store
    keyring: Keyring
    audit: Audit


Action = Callable[[Keys], Awaitable[int]]


def cmd_generate(args: argparse.Namespace) -> int:
    print(generate_kek())
    return EXIT_OK


def _run(args: argparse.Namespace, action: Action) -> int:
    config = load(args)
    try:
        keyring = Keyring.from_refs(
            config.keys.active, config.keys.kek, environ=os.environ, base_dir=config.base_dir
        )
    except KeyMaterialError as exc:
        return fail(str(exc), 2)

    async def main() -> int:
        store = await open_store(config.store.url, base_dir=config.base_dir)
        clock = SystemClock()
        audit = Audit.for_config(store, clock, config)
        dk = DataKeys(store, keyring, clock, on_event=key_events(audit))
        try:
            return await action(Keys(dk, store, keyring, audit))
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except ValueError as exc:  # a bad scope, an unknown user: the message says which
        return fail(str(exc))
    except StoreError as exc:
        return fail(describe_failure(config.store.url, exc))
    except CryptoError as exc:
        return fail(f"{type(exc).__name__}: {exc}")


async def _record_failure(
    audit: Audit, event: str, exc: Exception, *, user: str | None = None, **fields: str
) -> None:
    await audit.record_or_log(event, user=user, outcome="error", error=type(exc).__name__, **fields)


def _counts(by_kek: dict[str, int]) -> str:
    return " ".join(f"{kek}={n}" for kek, n in by_kek.items()) or "-"


def status_lines(data: KeyStatus, secrets: SecretStatus) -> list[str]:
    """`keys status` for people: counts and KEK ids, never key material."""
    return [
        f"active kek: {data.active_kek}",
        f"data keys: {data.versions} (scopes {data.scopes}); by kek: {_counts(data.rows_by_kek)}; "
        f"need rewrap: {data.needs_rewrap}; unknown kek: {data.unknown_kek}",
        f"mfa secrets: {sum(secrets.by_kek.values())}; by kek: {_counts(secrets.by_kek)}; "
        f"need rewrap: {secrets.needs_rewrap}",
    ]


def rewrap_lines(report: RewrapReport, secrets: SecretStatus) -> list[str]:
    return [
        f"data keys: rewrapped {report.rewrapped}; already current {report.current}; "
        f"failed {len(report.failed)}",
        f"mfa secrets: rewrapped {secrets.rewrapped}; failed {len(secrets.failed)}",
    ]


def _print(args: argparse.Namespace, lines: list[str], data: dict[str, object]) -> None:
    if args.json:
        print(json.dumps(data, sort_keys=True))
    else:
        print("\n".join(lines))


def cmd_status(args: argparse.Namespace) -> int:
    async def action(k: Keys) -> int:
        data = await k.dk.status()
        secrets = await secrets_status(k.store, k.keyring)
        as_json = {
            "active_kek": data.active_kek,
            "data_keys": asdict(data),
            "mfa_secrets": {"by_kek": secrets.by_kek, "needs_rewrap": secrets.needs_rewrap},
        }
        _print(args, status_lines(data, secrets), as_json)
        return EXIT_OK

    return _run(args, action)


def cmd_rewrap(args: argparse.Namespace) -> int:
    async def action(k: Keys) -> int:
        try:
            report = await k.dk.rewrap_all()
            secrets = await rewrap_secrets(k.store, k.keyring)
        except Exception as exc:
            await _record_failure(k.audit, "key.rewrap_failed", exc)
            raise
        as_json = {
            "data_keys": {"rewrapped": report.rewrapped, "current": report.current,
                          "failed": report.failed},
            "mfa_secrets": {"rewrapped": secrets.rewrapped, "failed": secrets.failed},
        }  # fmt: skip
        _print(args, rewrap_lines(report, secrets), as_json)
        await _record_rewrap(k.audit, report, secrets)
        failed = len(report.failed) + len(secrets.failed)
        if failed:
            # Rows under a KEK no longer configured (or corrupt) would stop decrypting.
            return fail(
                f"{failed} wrapped key(s) or MFA secret(s) could not be rewrapped: keep their "
                "old KEK listed under keys.kek and run `gateway keys rewrap` again"
            )
        return EXIT_OK

    return _run(args, action)


async def _record_rewrap(audit: Audit, report: RewrapReport, secrets: SecretStatus) -> None:
    failed = report.failed + secrets.failed
    fields = {
        "rewrapped": str(report.rewrapped),
        "current": str(report.current),
        "failed": str(len(report.failed)),
        "mfa_rewrapped": str(secrets.rewrapped),
        "mfa_failed": str(len(secrets.failed)),
    }
    if failed:
        fields["failed_rows"] = ",".join(failed[:_FAILED_ROWS_SHOWN])
    outcome = "partial" if failed else "ok"
    # The rows are rewrapped whatever happens to the event.
    await audit.record_or_log("key.rewrapped", user=None, outcome=outcome, **fields)


async def _existing_user(store: Store, scope: str) -> None:
    """A `user:` scope names an existing user, spelled as stored (the scope the gateway uses
    is `user:` + the stored username): a key for anyone else would never be used."""
    name = scope_user(scope)
    if name is None:
        return
    user = await Users(store, Hasher(Argon2Params()), SystemClock()).get(name)
    if user is None:
        raise ValueError(f"no such user: {name[:200]}")
    if user.username != name:
        raise ValueError(f"the user's scope is spelled user:{user.username}")


def cmd_rotate(args: argparse.Namespace) -> int:
    async def action(k: Keys) -> int:
        try:
            await _existing_user(k.store, args.scope)
            version = await k.dk.rotate(args.scope)
        except Exception as exc:
            scope = args.scope[:200]
            await _record_failure(
                k.audit, "key.rotate_failed", exc, user=scope_user(scope), scope=scope
            )
            raise
        print(f"{args.scope}: version {version} is now active")
        return EXIT_OK

    return _run(args, action)


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    keys = verbs.add_parser(
        "keys", parents=[common], help="key encryption keys and per-scope data keys"
    )
    sub = keys.add_subparsers(dest="keys_verb", required=True)
    # `generate` needs no config file; it takes `-c` (and ignores it) like every verb.
    sub.add_parser(
        "generate", parents=[common], help="print a fresh random KEK (base64)"
    ).set_defaults(func=cmd_generate)
    status = sub.add_parser("status", parents=[common], help="data keys, KEK ids, rows to rewrap")
    status.set_defaults(func=cmd_status)
    rewrap = sub.add_parser(
        "rewrap", parents=[common], help="rewrap data keys and MFA secrets under the active KEK"
    )
    rewrap.set_defaults(func=cmd_rewrap)
    for p in (status, rewrap):
        p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    p = sub.add_parser("rotate", parents=[common], help="new active data key version")
    p.add_argument("scope", help="user:NAME or role:NAME")
    p.set_defaults(func=cmd_rotate)
