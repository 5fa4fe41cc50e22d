"""Metrics and audit of the encryption steps, from what the transforms noted on the Exchange.

Counts `gateway_crypto_operations_total{op,result}` (bounded labels) and writes a
`decrypt.failed` audit event when a response carried tampered tokens or a corrupt envelope,
and an `encrypt.failed` one when a body on an encrypting rule could not be parsed (400).
Never sees or records plaintext, tokens or keys: only the counts the transforms left.
"""

from __future__ import annotations

import logging

from gateway.exchange import Exchange
from gateway.metrics import CRYPTO_OPS
from gateway.state import Gateway

__all__ = ["account"]

log = logging.getLogger("gateway.crypto")


async def account(ex: Exchange, gw: Gateway) -> None:
    notes = ex.notes
    if "encrypt" in notes:
        CRYPTO_OPS.labels("encrypt", "ok").inc()
    if "encrypt_error" in notes:
        CRYPTO_OPS.labels("encrypt", "invalid").inc()
        await _audit(ex, gw, "encrypt.failed", 1)
    counts = notes.get("tokens")
    invalid = 0
    if counts is not None:
        for result in ("replaced", "foreign", "invalid"):
            n = getattr(counts, result, 0)
            if n:
                CRYPTO_OPS.labels("decrypt", "ok" if result == "replaced" else result).inc(n)
        invalid = getattr(counts, "invalid", 0)
    status = notes.get("decrypt")
    if status is not None:
        CRYPTO_OPS.labels("decrypt_body", status).inc()
        if status == "invalid":
            invalid += 1
    if invalid:
        await _audit(ex, gw, "decrypt.failed", invalid)


async def _audit(ex: Exchange, gw: Gateway, event: str, invalid: int) -> None:
    auth = gw.services.get("auth")
    if auth is None:
        return
    try:
        await auth.audit.record(
            event,
            user=ex.identity.user if ex.identity else None,
            outcome="invalid",
            ex=ex,
            rule=ex.rule_name,
            count=str(invalid),
        )
    except Exception:  # noqa: BLE001 - the answer is already sent; keep the log line
        log.warning("could not record %s", event, extra={"fields": {"rule": ex.rule_name}})
