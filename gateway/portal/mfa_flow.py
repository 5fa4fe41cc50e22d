"""Where MFA sits in a sign-in: which step is due after the password, which page answers it,
which sessions may use the MFA endpoints, and the upgrade to an `mfa` session on success.

Under `mfa.enforce: all` every password sign-in ends in a partial session (5 minutes, opens
only the MFA endpoints) and the answer `mfa_required` or `mfa_enrollment_required`. Under
`policy` the password gives a one-factor session, and an `mfa` rule steps it up (access.py
redirects to the challenge with `next`). Never logs a code or a cookie.
"""

from __future__ import annotations

from urllib.parse import quote

from gateway.auth.service import Auth
from gateway.auth.sessions import LEVELS, SessionRecord
from gateway.auth.users import User
from gateway.edge.identify import USER_NOTE, load_identity
from gateway.edge.session import begin_session
from gateway.edge.state import Gateway
from gateway.http.errors import Unauthorized
from gateway.http.exchange import Exchange

__all__ = [
    "CHALLENGE",
    "SETUP",
    "complete",
    "mfa_page",
    "mfa_session",
    "mfa_step",
    "with_next",
]

CHALLENGE = "/.gateway/mfa"
SETUP = "/.gateway/mfa/setup"


async def mfa_step(gw: Gateway, auth: Auth, user: User) -> str | None:
    """The answer due after a right password: None (signed in), or the MFA step to take."""
    if gw.config.mfa.enforce != "all":
        return None
    if await auth.mfa.enabled(user.key):
        return "mfa_required"
    return "mfa_enrollment_required"


def mfa_page(step: str, nxt: str) -> str:
    return with_next(CHALLENGE if step == "mfa_required" else SETUP, nxt)


def with_next(path: str, nxt: str) -> str:
    """`path` carrying the (already safe) return path `nxt`, left off when it is `/`."""
    return path if nxt == "/" else f"{path}?next={quote(nxt, safe='/')}"


async def mfa_session(ex: Exchange, gw: Gateway) -> tuple[SessionRecord, User]:
    """The session (partial or full) and user allowed on the MFA endpoints, or 401."""
    await load_identity(ex, gw)
    record: SessionRecord | None = ex.session
    user: User | None = ex.notes.get(USER_NOTE)
    if record is None or user is None or record.auth_level not in LEVELS:
        raise Unauthorized("no_session")
    return record, user


async def complete(ex: Exchange, auth: Auth, user: User) -> None:
    """The second factor is proven: a new session id at level `mfa` replaces the current one
    (partial or one-factor) when the response is sent, and the account's failure count starts
    afresh."""
    await begin_session(
        ex.request, user=user.key, user_uid=user.uid, auth_level="mfa", ip=ex.view.ip
    )
    await auth.lockout.succeeded(user.key, ex.view.ip)
