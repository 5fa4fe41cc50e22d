"""`gateway keys generate|status|rewrap|rotate SCOPE` (DESIGN.md section 8). Never prints keys
except the fresh KEK that `generate` exists to print."""

from __future__ import annotations

import argparse
import asyncio
import os

from gateway.cli import EXIT_OK, extension, fail, load
from gateway.clock import SystemClock
from gateway.crypto import CryptoError, KeyMaterialError
from gateway.crypto.datakeys import DataKeys
from gateway.crypto.keyring import Keyring, generate_kek
from gateway.store import StoreError, open_store


def cmd_generate(args: argparse.Namespace) -> int:
    print(generate_kek())
    return EXIT_OK


def _run(args: argparse.Namespace, action) -> int:
    config = load(args)
    try:
        keyring = Keyring.from_refs(
            config.keys.active, config.keys.kek, environ=os.environ, base_dir=config.base_dir
        )
    except KeyMaterialError as exc:
        return fail(str(exc), 2)

    async def main() -> int:
        store = await open_store(config.store.url, base_dir=config.base_dir)
        try:
            return await action(DataKeys(store, keyring, SystemClock()))
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (StoreError, CryptoError, ValueError) as exc:
        return fail(f"{type(exc).__name__}: {exc}")


def cmd_status(args: argparse.Namespace) -> int:
    async def action(dk: DataKeys) -> int:
        print(await dk.status())
        return EXIT_OK

    return _run(args, action)


def cmd_rewrap(args: argparse.Namespace) -> int:
    async def action(dk: DataKeys) -> int:
        report = await dk.rewrap_all()
        print(report)
        if report.failed:
            # Rows under a KEK no longer configured (or corrupt) would stop decrypting.
            return fail(
                f"{len(report.failed)} wrapped key(s) could not be rewrapped: keep their old "
                "KEK listed under keys.kek and run `gateway keys rewrap` again"
            )
        return EXIT_OK

    return _run(args, action)


def cmd_rotate(args: argparse.Namespace) -> int:
    async def action(dk: DataKeys) -> int:
        version = await dk.rotate(args.scope)
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
