"""Audit events of the account and session layer, appended to the store's audit stream.

One JSON object per event: time, event, user, ip, user agent, request id, outcome, and a few
named extra fields. Never a password, a session id, a cookie or a hash: callers pass only the
fields below, and `extra` values are short machine-readable reasons.
"""

from __future__ import annotations

import json
import logging

from gateway.clock import Clock
from gateway.exchange import Exchange
from gateway.metrics import AUTH_ATTEMPTS
from gateway.store.base import Store

__all__ = ["Audit"]

log = logging.getLogger("gateway.audit")
# Audit events that are also authentication attempts: (factor, result) labels, bounded.
_ATTEMPTS = {"login.success": ("password", "success"), "login.failure": ("password", "failure")}


class Audit:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def record(
        self,
        event: str,
        *,
        user: str | None,
        outcome: str,
        ex: Exchange | None = None,
        **extra: str,
    ) -> None:
        entry: dict[str, object] = {
            "time": self.clock.now(),
            "event": event,
            "user": user,
            "ip": ex.view.ip if ex else None,
            "user_agent": ex.request.headers.get("User-Agent", "")[:256] if ex else None,
            "request_id": ex.rid if ex else None,
            "outcome": outcome,
            **extra,
        }
        if event in _ATTEMPTS:
            AUTH_ATTEMPTS.labels(*_ATTEMPTS[event]).inc()
        await self.store.audit_append(json.dumps(entry, separators=(",", ":")).encode())
        log.info("audit", extra={"fields": entry})
