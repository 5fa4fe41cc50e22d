"""The account API: who am I, my sessions, revoke one, log out everywhere (DESIGN.md section 5).

Sessions are named by an opaque public id derived from the stored hash, never by the secret id
in the cookie. Every answer is built from the store on this request (no cache).
"""

from __future__ import annotations

import re

from aiohttp import web

from gateway.auth.forms import check_origin, check_token, read_posted
from gateway.auth.identify import signed_in
from gateway.auth.service import AUTH, Auth
from gateway.auth.sessions import SessionRecord
from gateway.endpoints import route
from gateway.errors import NotFound, json_response
from gateway.exchange import Exchange
from gateway.state import Gateway

__all__ = ["describe"]

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
    mfa = await _auth(gw).users.store.get("mfa", user.key)
    return json_response(
        {
            "user": user.username,
            "email": user.email,
            "roles": list(user.roles),
            "mfa_enabled": mfa is not None,
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
    pid = ex.notes["params"]["id"]
    target = await auth.sessions.find(user.key, pid) if _PUBLIC_ID.match(pid) else None
    if target is None:
        raise NotFound("no_such_session")
    await auth.sessions.end(target)
    await auth.audit.record("session.revoked", user=user.username, outcome="revoked", ex=ex)
    response = web.Response(status=204)
    if target.hash == record.hash:
        auth.sessions.clear_cookie(response)
    return response


@route("POST", "/.gateway/api/logout-all")
async def logout_all(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    record, user = await signed_in(ex, gw)
    posted = await read_posted(ex, allow_empty=True)
    check_token(ex, posted, record.csrf)
    auth = _auth(gw)
    ended = await auth.sessions.end_all(user.key)
    await auth.audit.record(
        "session.revoked", user=user.username, outcome="logout_all", ex=ex, count=str(ended)
    )
    response = json_response({"status": "logged_out", "sessions_ended": ended})
    auth.sessions.clear_cookie(response)
    return response
