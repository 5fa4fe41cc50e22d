"""The per-request state that flows through the pipeline steps (DESIGN.md section 2).

Plain data: each step reads what earlier steps set and fills its own fields. Nothing here does
I/O. Handlers never re-derive the path or the client IP: they read them from the Exchange.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.http.canonical import CanonicalTarget
from gateway.http.headers import ClientView, Identity

__all__ = ["Exchange", "EXCHANGE", "CURRENT"]


@dataclass(slots=True)
class Exchange:
    request: web.Request
    target: CanonicalTarget
    view: ClientView
    rid: str
    started: float
    rule: Any = None  # gateway.policy.Rule once matched
    rule_name: str = "-"
    identity: Identity | None = None
    session: Any = None  # the loaded session record, if any
    status: int = 0
    bytes_out: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def wants_json(self) -> bool:
        """API call: asks for JSON or sends a JSON body (DESIGN.md section 5)."""
        req = self.request
        # Media types are case-insensitive (RFC 9110 8.3.1); lowering a short header is cheap.
        accept = req.headers.get("Accept", "").lower()
        return "application/json" in accept or req.content_type == "application/json"


EXCHANGE = web.RequestKey("exchange", Exchange)

# The request being handled, for reports from layers that must not see the web layer (a data
# key created on first use is audited with the request that caused it). Set by pipeline.begin.
CURRENT: ContextVar[Exchange | None] = ContextVar("gateway_exchange", default=None)
