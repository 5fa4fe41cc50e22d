"""The load-identity step of the pipeline: session cookie -> session record -> user -> Identity.

Runs on every request that carries a session cookie, with no cache, so a role change, a disable
or a delete takes effect on the user's next request on every instance. One store round trip:
the session, the user record and the MFA flag together (`gateway.edge.session`; a cookie issued
before the user hint takes two). Only a full session
(auth level password or mfa) of an enabled user who needs no password change yields an
identity; `ex.session` is set for any live session so the gateway's own endpoints can see
partial ones. Never decides access and never logs the cookie.
"""

from __future__ import annotations

from gateway.auth.service import AUTH, Auth
from gateway.auth.sessions import FULL_LEVELS, SessionRecord
from gateway.auth.users import User, parse_user
from gateway.edge.session import get_session
from gateway.edge.state import Gateway
from gateway.http.errors import GatewayError, Unauthorized
from gateway.http.exchange import Exchange
from gateway.http.headers import Identity

__all__ = ["MFA_NOTE", "PasswordChangeRequired", "USER_NOTE", "load_identity", "signed_in"]

USER_NOTE = "auth.user"
MFA_NOTE = "mfa_enabled"  # whether the user has MFA on: access.py picks challenge or setup


async def load_identity(ex: Exchange, gw: Gateway) -> None:
    ex.identity = None
    ex.session = None
    if gw.services.get(AUTH) is None or "Cookie" not in ex.request.headers:
        return  # no accounts, or (most public requests) no cookie at all
    # One store round trip: the session, the user record and its MFA flag (edge/session.py).
    session = await get_session(ex.request)
    record = getattr(session, "record", None)
    if record is None:
        return
    auth: Auth = gw.services[AUTH]
    raw_user, raw_mfa = session.facts
    user = parse_user(raw_user)
    if user is None or user.disabled or user.uid != record.user_uid:
        await auth.sessions.end(record)
        session.record = None
        return
    ex.session = record
    ex.notes[USER_NOTE] = user
    # What the decide step needs to choose the MFA challenge or enrollment (access.py).
    ex.notes[MFA_NOTE] = raw_mfa is not None
    if record.auth_level in FULL_LEVELS and not user.must_change_password:
        ex.identity = identity_of(user)


def identity_of(user: User) -> Identity:
    return Identity(user=user.username, email=user.email, roles=tuple(user.roles))


class PasswordChangeRequired(GatewayError):
    status, code = 403, "password_change_required"


async def signed_in(
    ex: Exchange, gw: Gateway, *, allow_password_change: bool = False
) -> tuple[SessionRecord, User]:
    """For the gateway's own endpoints: the full session and its user, or 401 (403 while the
    user must first change the password)."""
    await load_identity(ex, gw)
    record: SessionRecord | None = ex.session
    user: User | None = ex.notes.get(USER_NOTE)
    if record is None or user is None or record.auth_level not in FULL_LEVELS:
        raise Unauthorized("no_session")
    if user.must_change_password and not allow_password_change:
        raise PasswordChangeRequired("password_change_required")
    return record, user
