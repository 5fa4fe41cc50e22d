"""Sessions through aiohttp-session: `get_session` / `new_session` over the gateway's records.

`SessionStorage` is an aiohttp-session storage whose sessions are the server-side records of
`gateway.auth.sessions` (hashed ids, per-user index, idle and absolute timeouts on the injected
clock). The pieces of the library used as it is: the middleware, `get_session`, `new_session`,
`Session.invalidate`. Where it cannot serve a rule of ours, this module says so:

- A session's record is never changed in place. A login, a step-up or an MFA enrollment is a
  `new_session(request)` carrying the new level: saving it creates a new record and id and ends
  the one the client came with (no fixation). `invalidate()` ends the record and clears the
  cookie (logout). Any other change to a loaded session is refused at save time.
- The idle refresh (at most once a minute) is written when the record is loaded, not by the
  middleware: the middleware saves only unprepared `web.Response`s, and a proxied response is
  streamed.
- The library's own age check and `created` (wall clock, reset on every change) are not used
  (`max_age=None`); expiry is the records' own, on our clock.
- The cookie is written by `CookieSettings` (the `__Host-` prefix needs Secure on the clearing
  cookie too, which aiohttp's `del_cookie` does not send).

One store round trip loads the session, the user record and its MFA flag
(`Sessions.load_with`): they ride on the session object as `record` and `facts`, never in its
mapping, so nothing but the level and user is ever saved from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp_session import AbstractStorage, Session, get_session, new_session

from gateway.auth.mfa import ACTIVE as MFA_ACTIVE
from gateway.auth.sessions import CookieSettings, SessionRecord, Sessions
from gateway.auth.users import KIND as USER_KIND

__all__ = [
    "GatewaySession",
    "SessionStorage",
    "begin_session",
    "end_session",
    "get_session",
    "new_session",
]


class GatewaySession(Session):
    """An aiohttp-session `Session` that also carries what the load read beside the record:
    `record` (the live `SessionRecord`, or None) and `facts` (user record and MFA flag bytes)."""

    def __init__(
        self,
        identity: str | None,
        *,
        data: Any,
        new: bool,
        record: SessionRecord | None = None,
        facts: tuple[bytes | None, bytes | None] = (None, None),
    ) -> None:
        super().__init__(identity, data=data, new=new, max_age=None)
        self.record = record
        self.facts = facts


def _facts_of(user: str) -> tuple[tuple[str, str], tuple[str, str]]:
    # The user's store key is also the key of its MFA flag.
    return ((USER_KIND, user), (MFA_ACTIVE, user))


class SessionStorage(AbstractStorage):
    """aiohttp-session storage over `Sessions`. `sessions()` is asked at each request: the
    accounts are built at start-up, after the application (and its middleware) exists."""

    def __init__(self, cookie: CookieSettings, sessions: Callable[[], Sessions | None]) -> None:
        # The library's cookie parameters, for what reads them; the cookie itself is written by
        # the accounts' own CookieSettings (the same settings, from the same config).
        super().__init__(
            cookie_name=cookie.name,
            path="/",
            secure=cookie.secure,
            httponly=True,
            samesite=cookie.same_site,
            max_age=None,
        )
        self._sessions = sessions

    def load_cookie(self, request: web.Request) -> str | None:
        sessions = self._sessions()
        return sessions.read_cookie(request) if sessions is not None else None

    async def new_session(self) -> Session:
        return GatewaySession(None, data=None, new=True)

    async def load_session(self, request: web.Request) -> Session:
        sessions = self._sessions()
        token = self.load_cookie(request)
        if sessions is None or token is None:
            return GatewaySession(None, data=None, new=True)
        record, values = await sessions.load_with(token, _facts_of)
        if record is None:
            return GatewaySession(None, data=None, new=True)
        raw_user, raw_mfa = values
        data = {"session": {"user": record.user, "auth_level": record.auth_level}}
        return GatewaySession(token, data=data, new=False, record=record, facts=(raw_user, raw_mfa))

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        sessions = self._sessions()
        if sessions is None:
            raise RuntimeError("no accounts: nothing can start or end a session")
        if session.empty:
            old = self.load_cookie(request)
            if old is not None:
                await sessions.end_token(old)
            sessions.cookie.clear(response, sessions.cookie.name)
            return
        if not session.new:
            raise RuntimeError("a loaded session is never changed in place: use new_session")
        # SECURITY: a new id on every login and step-up; the id the client came with is ended.
        token, record = await sessions.create(
            session["user"],
            user_uid=session["user_uid"],
            auth_level=session["auth_level"],
            ip=session["ip"],
            user_agent=session["user_agent"],
            replaces=self.load_cookie(request),
        )
        if isinstance(session, GatewaySession):
            session.record = record
        sessions.cookie.set(response, sessions.cookie.name, token)


async def begin_session(
    request: web.Request, *, user: str, user_uid: str, auth_level: str, ip: str
) -> None:
    """Start a new session for the response being built (saved, with its cookie, when the
    handler returns it)."""
    session = await new_session(request)
    session.update(
        user=user,
        user_uid=user_uid,
        auth_level=auth_level,
        ip=ip,
        user_agent=request.headers.get("User-Agent", ""),
    )


async def end_session(request: web.Request) -> None:
    """End the client's session (if any) and clear its cookie when the response is sent."""
    (await get_session(request)).invalidate()
