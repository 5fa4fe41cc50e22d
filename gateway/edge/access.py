"""Steps 2 and 4 of the pipeline: match the policy rule and enforce its decision.

Owns the mapping of a policy `Decision` to the contract's answers (DESIGN.md section 5):
browser GET/HEAD -> 302 to the login page or the MFA challenge/setup with a same-origin `next`;
API calls -> 401 JSON; missing role or deny -> 403; per-rule `rate_limit` -> 429 with
Retry-After, counted in the store (fails closed when the store is down). Never decides access
itself: `gateway.policy.decide` does; this module only answers for it.

A 403 of a signed-in (or half signed-in) user is an `access.denied` audit event; the other
refusals are only logged: a login or MFA challenge is the normal way to a protected page, and
an anonymous hit on a `deny` rule is scanner noise that anyone could send at will to flush the
capped audit stream (docs/operations.md, "What is audited").
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import web

from gateway.edge.identify import MFA_NOTE
from gateway.edge.state import Gateway
from gateway.http.errors import (
    Forbidden,
    MfaEnrollmentRequired,
    MfaRequired,
    TooManyRequests,
    Unauthorized,
)
from gateway.http.exchange import Exchange
from gateway.policy import Decision, PolicyHolder, Principal, decide

__all__ = ["match_rule", "principal_of", "enforce", "POLICY"]

log = logging.getLogger("gateway.access")
POLICY = "policy"  # gw.services key of the PolicyHolder


def match_rule(ex: Exchange, gw: Gateway) -> None:
    holder: PolicyHolder = gw.services[POLICY]
    policy = holder.current  # one read: this request finishes under this policy
    ex.notes["policy"] = policy
    ex.rule = policy.match(ex.request.method, ex.view.host, ex.target.path, ex.view.ip)
    ex.rule_name = ex.rule.name if ex.rule is not None else "default"


def principal_of(ex: Exchange) -> Principal:
    """Who is asking, from what the identify step found. Only a full session carries an
    identity; a partial (MFA pending) session counts as partial; anything else is anonymous."""
    session = ex.session
    level = getattr(session, "auth_level", "none") if session is not None else "none"
    mfa_enabled = bool(ex.notes.get(MFA_NOTE, False))
    if ex.identity is not None:
        return Principal(
            user=ex.identity.user,
            roles=frozenset(ex.identity.roles),
            auth_level=level if level in ("password", "mfa") else "password",
            mfa_enabled=mfa_enabled,
        )
    if level == "partial":
        return Principal(
            user=getattr(session, "user", None), auth_level="partial", mfa_enabled=mfa_enabled
        )
    return Principal.anonymous()


def decide_for(ex: Exchange, gw: Gateway) -> Decision:
    return decide(ex.notes["policy"], ex.rule, principal_of(ex), mfa_enforce=gw.config.mfa.enforce)


async def enforce(ex: Exchange, gw: Gateway) -> web.StreamResponse | None:
    """None when the request may go on; a redirect response, or raise the error answer."""
    decision = decide_for(ex, gw)
    ex.notes["decision"] = decision
    if decision.allowed:
        await _rate_limit(ex, gw)
        return None
    user = principal_of(ex).user
    if decision.outcome == "forbidden" and user is not None:
        await _audit_denied(ex, gw, user, decision)
    else:
        log.info(
            "access denied",
            extra={
                "fields": {
                    "rule": ex.rule_name,
                    "reason": decision.reason,
                    "request_id": ex.rid,
                    "outcome": decision.outcome,
                }
            },
        )
    if decision.outcome == "forbidden":
        raise Forbidden(decision.reason)
    browser = not ex.wants_json and ex.request.method in ("GET", "HEAD")
    if decision.outcome == "login":
        if browser:
            return _redirect("/.gateway/login", ex)
        raise Unauthorized(decision.reason)
    page = "/.gateway/mfa" if decision.outcome == "mfa" else "/.gateway/mfa/setup"
    if browser:
        return _redirect(page, ex)
    if decision.outcome == "mfa_enroll":
        raise MfaEnrollmentRequired(decision.reason)
    raise MfaRequired(decision.reason)


async def _audit_denied(ex: Exchange, gw: Gateway, user: str, decision: Decision) -> None:
    # The answer is a 403 whether or not the event is written.
    await gw.services["auth"].audit.record_or_log(
        "access.denied", user=user, outcome=decision.outcome, ex=ex, reason=decision.reason
    )


def _redirect(page: str, ex: Exchange) -> web.Response:
    nxt = quote(ex.target.target, safe="/")
    return web.Response(
        status=302, headers={"Location": f"{page}?next={nxt}", "Cache-Control": "no-store"}
    )


async def _rate_limit(ex: Exchange, gw: Gateway) -> None:
    rule = ex.rule
    if rule is None or rule.rate_limit is None:
        return
    limit = rule.rate_limit
    who = ex.identity.user if (limit.by == "user" and ex.identity) else f"ip:{ex.view.ip}"
    store = gw.services["store"]
    count, ttl = await store.incr("rate", f"{rule.name}:{who}", window=limit.per_seconds)
    if count > limit.count:
        raise TooManyRequests("rate_limited", retry_after=ttl)
