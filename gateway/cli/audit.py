"""`gateway audit tail [-n N] [--user U]`: the last audit events from the store, one JSON
object a line, oldest first."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from gateway.cli.common import EXIT_OK, fail, load
from gateway.store import StoreError, describe_failure, open_store

__all__ = ["register"]

# With --user the last N matching events are searched for in this many recent events.
_SCAN = 100_000


async def _tail(url: str, base_dir: Path, n: int, user: str | None) -> list[bytes]:
    store = await open_store(url, base_dir=base_dir)
    try:
        raw = await store.audit_tail(_SCAN if user else n)
    finally:
        await store.close()
    if user is not None:
        wanted = user.casefold()
        raw = [e for e in raw if _user(e) == wanted]
    return raw[-n:] if n > 0 else []


def _user(event: bytes) -> str | None:
    try:
        user = json.loads(event).get("user")
    except (ValueError, AttributeError):
        return None
    return user.casefold() if isinstance(user, str) else None


def cmd_audit_tail(args: argparse.Namespace) -> int:
    config = load(args)
    try:
        events = asyncio.run(_tail(config.store.url, config.base_dir, args.n, args.user))
    except StoreError as exc:
        return fail(describe_failure(config.store.url, exc))
    for event in events:
        print(event.decode("utf-8", "replace"))
    return EXIT_OK


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    audit = verbs.add_parser("audit", parents=[common], help="read the audit trail")
    sub = audit.add_subparsers(dest="audit_verb", required=True, metavar="VERB")
    tail = sub.add_parser("tail", parents=[common], help="print the last audit events as JSON")
    tail.add_argument("-n", type=int, default=20, metavar="N", help="events to show (20)")
    tail.add_argument("--user", help="only events of this user")
    tail.set_defaults(func=cmd_audit_tail)
