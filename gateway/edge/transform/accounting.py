"""Metrics and audit of the encryption steps, from what the transforms noted on the Exchange.

Counts `gateway_crypto_operations_total{op,result}` (bounded labels) and writes a
`decrypt.failed` audit event when a response carried tampered tokens or a corrupt envelope,
an `encrypt.failed` one when a body on an encrypting rule could not be parsed (400), and one
`decrypt.refused_context` per response whose HTML held tokens in places they are never opened
(a URL, script or unlisted attribute: see gateway/crypto/html_context.py).
Never sees or records plaintext, tokens or keys: only the counts the transforms left.
"""

from __future__ import annotations

from gateway.edge.state import Gateway
from gateway.http.exchange import Exchange
from gateway.metrics import CRYPTO_OPS

__all__ = ["account"]


async def account(ex: Exchange, gw: Gateway) -> None:
    notes = ex.notes
    if "encrypt" in notes:
        CRYPTO_OPS.labels("encrypt", "ok").inc()
    if "encrypt_error" in notes:
        CRYPTO_OPS.labels("encrypt", "invalid").inc()
        await _audit(ex, gw, "encrypt.failed", 1)
    counts = notes.get("tokens")
    invalid = refused = 0
    if counts is not None:
        for result in ("replaced", "foreign", "invalid", "refused_context"):
            n = getattr(counts, result, 0)
            if n:
                CRYPTO_OPS.labels("decrypt", "ok" if result == "replaced" else result).inc(n)
        invalid = getattr(counts, "invalid", 0)
        refused = getattr(counts, "refused_context", 0)
    status = notes.get("decrypt")
    if status is not None:
        CRYPTO_OPS.labels("decrypt_body", status).inc()
        if status == "invalid":
            invalid += 1
    if invalid:
        await _audit(ex, gw, "decrypt.failed", invalid)
    if refused:
        await _audit(ex, gw, "decrypt.refused_context", refused, outcome="refused_context")


async def _audit(
    ex: Exchange, gw: Gateway, event: str, count: int, *, outcome: str = "invalid"
) -> None:
    auth = gw.services.get("auth")
    if auth is None:
        return
    # The answer is already sent: a failed write is logged, the event's `rule` comes from `ex`.
    await auth.audit.record_or_log(
        event,
        user=ex.identity.user if ex.identity else None,
        outcome=outcome,
        ex=ex,
        count=str(count),
    )
