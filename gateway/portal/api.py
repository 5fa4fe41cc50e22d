"""The account API: who am I, my sessions, revoke one, log out everywhere (DESIGN.md section 5).

Sessions are named by an opaque public id derived from the stored hash, never by the secret id
in the cookie. Every answer is built from the store on this request (no cache).
"""

from __future__ import annotations

import re

from aiohttp import web

from gateway.auth.service import AUTH, Auth
from gateway.auth.sessions import SessionRecord
from gateway.auth.users import User
from gateway.edge.endpoints import route
from gateway.edge.identify import signed_in
from gateway.edge.session import end_session
from gateway.edge.state import Gateway
from gateway.http.errors import NotFound, json_response
from gateway.http.exchange import Exchange
from gateway.portal.forms import check_origin, check_token, read_posted

__all__ = ["describe", "revoke_session", "end_everywhere"]

_PUBLIC_ID = re.compile(r"^[0-9a-f]{32}$")


def _auth(gw: Gateway) -> Auth:
    return gw.services[AUTH]


def describe(record: SessionRecord, current: SessionRecord | None = None) -> dict[str, object]:
    return {
        "id": record.public_id,
        "auth_level": record.auth_level,
        "created": record.created,
        "last_seen": record.last_seen,
        "ip": record.ip,
        "user_agent": record.user_agent,
        "current": current is not None and record.hash == current.hash,
    }


@route("GET", "/.gateway/api/me")
async def me(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    record, user = await signed_in(ex, gw)
    mfa_enabled = await _auth(gw).mfa.enabled(user.key)
    return json_response(
        {
            "user": user.username,
            "email": user.email or None,
            "roles": list(user.roles),
            "mfa_enabled": mfa_enabled,
            "auth_level": record.auth_level,
        }
    )


@route("GET", "/.gateway/api/sessions")
async def sessions(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    record, user = await signed_in(ex, gw)
    live = await _auth(gw).sessions.of_user(user.key)
    return json_response({"sessions": [describe(r, record) for r in live]})


@route("DELETE", "/.gateway/api/sessions/{id}")
async def revoke(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    check_origin(ex)
    record, user = await signed_in(ex, gw)
    auth = _auth(gw)
    target = await revoke_session(ex, auth, user, ex.notes["params"]["id"])
    if target.hash == record.hash:
        await end_session(ex.request)
    return web.Response(status=204)


async def revoke_session(ex: Exchange, auth: Auth, user: User, pid: str) -> SessionRecord:
    """End the session of `user` named by public id `pid` (404 if it is not one of theirs) and
    audit it. Shared by the JSON API and the account page; the caller ends its own session
    (`end_session`) if the ended one is the current one."""
    target = await auth.sessions.find(user.key, pid) if _PUBLIC_ID.match(pid) else None
    if target is None:
        raise NotFound("no_such_session")
    await auth.sessions.end(target)
    await auth.audit.record("session.revoked", user=user.username, outcome="revoked", ex=ex)
    return target


async def end_everywhere(ex: Exchange, auth: Auth, user: User) -> int:
    """End every session of `user` and audit it; returns how many. The caller ends its own session
    (`end_session`)."""
    ended = await auth.sessions.end_all(user.key)
    await auth.audit.record(
        "session.revoked", user=user.username, outcome="logout_all", ex=ex, count=str(ended)
    )
    return ended


@route("POST", "/.gateway/api/logout-all")
async def logout_all(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    record, user = await signed_in(ex, gw)
    posted = await read_posted(ex, allow_empty=True)
    check_token(ex, posted, record.csrf)
    auth = _auth(gw)
    ended = await end_everywhere(ex, auth, user)
    await end_session(ex.request)
    return json_response({"status": "logged_out", "sessions_ended": ended})
