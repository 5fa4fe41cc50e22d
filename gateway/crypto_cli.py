"""`gateway keys generate|status|rewrap|rotate SCOPE` (DESIGN.md section 8). Never prints keys
except the fresh KEK that `generate` exists to print.

`rotate` and `rewrap` leave audit events, failures included: `key.rotated` (recorded by
DataKeys through its recorder) or `key.rotate_failed`; one `key.rewrapped` with the counts of
data keys and MFA secrets (outcome "partial" and the failed rows when some could not be
rewrapped) or `key.rewrap_failed`. Failure events carry the error's type, never key material."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.audit_events import key_events, scope_user
from gateway.auth.audit import Audit
from gateway.auth.mfa import SecretStatus, rewrap_secrets, secrets_status
from gateway.cli import EXIT_OK, extension, fail, load
from gateway.clock import SystemClock
from gateway.crypto import CryptoError, KeyMaterialError
from gateway.crypto.datakeys import DataKeys, RewrapReport
from gateway.crypto.keyring import Keyring, generate_kek
from gateway.store import StoreError, open_store
from gateway.store.base import Store

log = logging.getLogger("gateway.keys")
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
    except (StoreError, CryptoError, ValueError) as exc:
        return fail(f"{type(exc).__name__}: {exc}")


async def _record_failure(
    audit: Audit, event: str, exc: Exception, *, user: str | None = None, **fields: str
) -> None:
    try:
        await audit.record(event, user=user, outcome="error", error=type(exc).__name__, **fields)
    except Exception as again:  # noqa: BLE001 - the store may be what failed; the file has it
        log.warning("could not record %s: %s", event, type(again).__name__)


def cmd_status(args: argparse.Namespace) -> int:
    async def action(k: Keys) -> int:
        print(await k.dk.status())
        print(f"mfa secrets: {await secrets_status(k.store, k.keyring)}")
        return EXIT_OK

    return _run(args, action)


def cmd_rewrap(args: argparse.Namespace) -> int:
    async def action(k: Keys) -> int:
        try:
            report = await k.dk.rewrap_all()
            print(report)
            secrets = await rewrap_secrets(k.store, k.keyring)
            print(f"mfa secrets: {secrets}")
        except Exception as exc:
            await _record_failure(k.audit, "key.rewrap_failed", exc)
            raise
        await _record_rewrap(k.audit, report, secrets)
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
    try:
        await audit.record("key.rewrapped", user=None, outcome=outcome, **fields)
    except Exception as exc:  # noqa: BLE001 - the rows are rewrapped; the file has the event
        log.warning("could not record key.rewrapped: %s", type(exc).__name__)


def cmd_rotate(args: argparse.Namespace) -> int:
    async def action(k: Keys) -> int:
        try:
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


@extension
def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    keys = verbs.add_parser("keys", help="key encryption keys and per-scope data keys")
    sub = keys.add_subparsers(dest="keys_verb", required=True)
    sub.add_parser("generate", help="print a fresh random KEK (base64)").set_defaults(
        func=cmd_generate
    )
    sub.add_parser("status", parents=[common], help="data keys, KEK ids, rows to rewrap")
    sub.choices["status"].set_defaults(func=cmd_status)
    sub.add_parser("rewrap", parents=[common], help="rewrap data keys under the active KEK")
    sub.choices["rewrap"].set_defaults(func=cmd_rewrap)
    p = sub.add_parser("rotate", parents=[common], help="new active data key version")
    p.add_argument("scope", help="user:NAME or role:NAME")
    p.set_defaults(func=cmd_rotate)
