"""Audit events of the account and session layer, appended to the store's audit stream.

One JSON object per event: time, event, user, ip, user agent, request id, rule (the policy
rule of the request, `ex.rule_name`), outcome, and a few named extra fields. Never a password,
a session id, a cookie or a hash: callers pass only the fields below, and `extra` values are
short machine-readable reasons.

With `audit.log` set to a file path, each event's JSON line is also appended to that file
(created 0600). The write runs in a worker thread, one `os.write` on an O_APPEND descriptor
opened per event, so lines from several workers never interleave and rotation needs no
signal. "stdout" (the default) writes no file; the `gateway.audit` log line is emitted
either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.clock import Clock
from gateway.config import Config
from gateway.http.exchange import Exchange
from gateway.logs import iso_time
from gateway.metrics import AUTH_ATTEMPTS
from gateway.store.base import Store

__all__ = ["Audit"]

log = logging.getLogger("gateway.audit")
# Audit events that are also authentication attempts: (factor, result) labels, bounded.
_ATTEMPTS = {"login.success": ("password", "success"), "login.failure": ("password", "failure")}
# Second-factor events name their factor in the `factor` field.
_FACTOR_RESULTS = {"mfa.success": "success", "mfa.failure": "failure"}
_FACTORS = frozenset({"totp", "backup_code"})


class Audit:
    def __init__(self, store: Store, clock: Clock, *, file: Path | None = None) -> None:
        self.store = store
        self.clock = clock
        self.file = file
        # Plugins' `on_audit` hooks (guarded: an observer's failure is counted, not raised).
        self.observers: list[Callable[[dict[str, object]], Awaitable[None]]] = []

    @classmethod
    def for_config(cls, store: Store, clock: Clock, config: Config) -> Audit:
        """The writer `audit.log` asks for: "stdout" writes no file, a path is under base_dir."""
        sink = config.audit.log
        return cls(store, clock, file=None if sink == "stdout" else config.base_dir / sink)

    async def record(
        self,
        event: str,
        *,
        user: str | None,
        outcome: str,
        ex: Exchange | None = None,
        rule: str | None = None,
        **extra: str,
    ) -> None:
        entry: dict[str, object] = {
            "time": iso_time(self.clock.now()),
            "event": event,
            "user": user,
            "ip": ex.view.ip if ex else None,
            "user_agent": ex.request.headers.get("User-Agent", "")[:256] if ex else None,
            "request_id": ex.rid if ex else None,
            "rule": rule if rule is not None else (ex.rule_name if ex else None),
            "outcome": outcome,
            **extra,
        }
        if event in _ATTEMPTS:
            AUTH_ATTEMPTS.labels(*_ATTEMPTS[event]).inc()
        elif event in _FACTOR_RESULTS and extra.get("factor") in _FACTORS:
            AUTH_ATTEMPTS.labels(extra["factor"], _FACTOR_RESULTS[event]).inc()
        line = json.dumps(entry, separators=(",", ":")).encode()
        if self.file is not None:
            # Before the store: the file keeps the trail while the store is down.
            try:
                await asyncio.to_thread(_append, self.file, line + b"\n")
            except OSError as exc:
                log.error("audit file %s: %s", self.file, exc.strerror or type(exc).__name__)
        await self.store.audit_append(line)
        log.info("audit", extra={"fields": entry})
        for observe in self.observers:
            await observe(entry)

    async def record_or_log(
        self,
        event: str,
        *,
        user: str | None,
        outcome: str,
        ex: Exchange | None = None,
        **extra: str,
    ) -> None:
        """`record` for an action that stands whether or not its event is written (the store
        may be what failed): a failure is logged, event name and error type only."""
        try:
            await self.record(event, user=user, outcome=outcome, ex=ex, **extra)
        except Exception as exc:  # noqa: BLE001 - the action it reports is done already
            log.warning("could not record %s: %s", event, type(exc).__name__)


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
