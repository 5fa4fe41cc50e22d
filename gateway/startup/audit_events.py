"""Audit events for the layers that must not know the audit writer: data keys and policy reload.

`key_events(audit)` is the recorder `DataKeys` calls after it wrote a key row (created on first
use, rotated); during a request the event carries that request's fields (user, IP, user agent,
request id, rule). `policy_events(audit, loop)` is the `PolicyHolder.on_reload` hook: it counts
the reload, sets the rules gauge and records `policy.reloaded` (rule and file counts) or
`policy.reload_failed` (which file and key, what was expected; never the offending value). The
reload runs in a watcher thread or the SIGHUP handler, so the record is scheduled on the loop.

A failing audit write never undoes or fails the action it reports: it is logged (the event
name and the error type, nothing else) and the action stands.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from gateway.auth.audit import Audit
from gateway.crypto.datakeys import KeyEvents
from gateway.http.exchange import CURRENT
from gateway.metrics import POLICY_RELOADS, RULES_LOADED
from gateway.policy import ReloadResult

__all__ = ["key_events", "policy_events", "scope_user", "problems_text"]

_SHOWN_PROBLEMS = 5


def scope_user(scope: str) -> str | None:
    kind, _, name = scope.partition(":")
    return name if kind == "user" else None


def key_events(audit: Audit) -> KeyEvents:
    async def record(event: str, scope: str, version: int) -> None:
        ex = CURRENT.get()
        user = ex.identity.user if ex is not None and ex.identity is not None else None
        # The key exists whatever happens to its event: never fail its request.
        await audit.record_or_log(
            event,
            user=user or scope_user(scope),
            outcome="ok",
            ex=ex,
            scope=scope,
            version=str(version),
        )

    return record


def problems_text(result: ReloadResult) -> str:
    """'file: rule R: key: expected X' for the first few problems; the values are left out."""
    shown = []
    for p in result.errors[:_SHOWN_PROBLEMS]:
        shown.append(f"{p.where}: expected {p.expected}")
    more = len(result.errors) - len(shown)
    if more > 0:
        shown.append(f"and {more} more")
    return "; ".join(shown)


def policy_events(audit: Audit, loop: asyncio.AbstractEventLoop) -> Callable[[ReloadResult], None]:
    pending: set[asyncio.Task[None]] = set()

    def schedule(event: str, outcome: str, fields: dict[str, str]) -> None:
        # The reload stands whatever happens to its event.
        task = loop.create_task(audit.record_or_log(event, user=None, outcome=outcome, **fields))
        pending.add(task)  # keep a reference until it is done
        task.add_done_callback(pending.discard)

    def on_reload(result: ReloadResult) -> None:
        POLICY_RELOADS.labels(result.result).inc()
        if result.ok:
            RULES_LOADED.set(result.rules)
            event, outcome = "policy.reloaded", "ok"
            fields = {"rules": str(result.rules), "files": str(result.files)}
        else:
            event, outcome = "policy.reload_failed", "error"
            fields = {"errors": str(len(result.errors)), "error": problems_text(result)}
        fields["pid"] = str(os.getpid())  # each worker reloads on its own
        if loop.is_closed():
            return
        loop.call_soon_threadsafe(schedule, event, outcome, fields)

    return on_reload
