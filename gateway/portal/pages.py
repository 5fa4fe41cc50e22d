"""Login, logout, password change and the account page: the HTML pages and their JSON API
(DESIGN.md section 5).

HTML is rendered by jinja2 with autoescape and served with a CSP that allows no script; forms
carry CSRF tokens. Unknown user, wrong password and disabled account get one answer after the
same Argon2 work. A login always makes a new session id and ends the old one. Never logs or
echoes a password or a cookie.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from gateway.auth.lockout import account_key
from gateway.auth.redirects import safe_next
from gateway.auth.service import AUTH, Auth
from gateway.auth.sessions import SessionRecord
from gateway.auth.users import User
from gateway.edge.endpoints import route
from gateway.edge.identify import PasswordChangeRequired, load_identity, signed_in
from gateway.edge.session import begin_session, end_session
from gateway.edge.state import Gateway
from gateway.http.errors import (
    BadRequest,
    InvalidCredentials,
    MfaRequired,
    TooManyRequests,
    Unauthorized,
    json_response,
)
from gateway.http.exchange import Exchange
from gateway.portal.api import end_everywhere, revoke_session
from gateway.portal.forms import Posted, check_token, csrf_cookie_token, read_posted
from gateway.portal.mfa_flow import CHALLENGE, mfa_page, mfa_step

__all__ = ["ACCOUNT", "LOGIN", "PASSWORD", "account_page", "render", "sign_in_again"]

LOGIN = "/.gateway/login"
PASSWORD = "/.gateway/password"  # noqa: S105 - a path
ACCOUNT = "/.gateway/account"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_templates = Environment(
    loader=PackageLoader("gateway.portal", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
_CSS = (Path(__file__).parent / "static" / "gateway.css").read_bytes()


def render(name: str, status: int = 200, **context: object) -> web.Response:
    body = _templates.get_template(name).render(**context)
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _auth(gw: Gateway) -> Auth:
    return gw.services[AUTH]


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


@route("GET", "/.gateway/static/gateway.css")
async def stylesheet(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    return web.Response(
        body=_CSS,
        content_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def _login_page(
    ex: Exchange, auth: Auth, *, status: int = 200, error: str = "", username: str = "", nxt: str
) -> web.Response:
    token = csrf_cookie_token(ex, auth.sessions.cookie) or secrets.token_urlsafe(32)
    response = render(
        "login.html",
        status,
        title="Sign in",
        error=error,
        csrf_token=token,
        next=nxt,
        username=username,
    )
    auth.sessions.cookie.set(response, auth.sessions.cookie.csrf_name, token)
    return response


def sign_in_again(ex: Exchange, gw: Gateway, nxt: str) -> web.Response:
    """The login page, 401, for a form posted after its session ended (an expired MFA step)."""
    error = "Your sign-in has expired or ended. Please sign in again."
    return _login_page(ex, _auth(gw), status=401, error=error, nxt=nxt)


@route("GET,POST", LOGIN)
async def login(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    auth = _auth(gw)
    if ex.request.method in ("GET", "HEAD"):
        if ex.wants_json:
            raise Unauthorized("login_form_is_html")
        return _login_page(ex, auth, nxt=safe_next(ex.request.query.get("next")))
    posted = await read_posted(ex)
    if posted.is_form:
        check_token(ex, posted, csrf_cookie_token(ex, auth.sessions.cookie) or "")
    username, password = posted.data.get("username"), posted.data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise BadRequest("missing_credentials")
    # SECURITY: the attempt is counted (and refused when over a limit) before any lookup or
    # hash, so concurrent guesses cannot outrun the counter; known and unknown names alike.
    account = account_key(username)
    try:
        reservation = await auth.lockout.reserve(account, ex.view.ip, ex=ex)
    except TooManyRequests as exc:
        if not posted.is_form:
            raise
        page = _login_page(
            ex,
            auth,
            status=429,
            error="Too many sign-in attempts. Try again later.",
            username=username[:64],
            nxt=safe_next(posted.text("next")),
        )
        page.headers.update(exc.headers)
        return page
    user = await auth.users.verify_login(username, password)
    if user is None:
        await auth.lockout.failed(account, ex=ex)
        await auth.audit.record(
            "login.failure", user=username[:64], outcome="invalid_credentials", ex=ex
        )
        if posted.is_form:
            return _login_page(
                ex,
                auth,
                status=401,
                error="Wrong username or password.",
                username=username[:64],
                nxt=safe_next(posted.text("next")),
            )
        raise InvalidCredentials("invalid_credentials")
    step = await mfa_step(gw, auth, user)
    # SECURITY: a password alone never wipes an MFA user's count (wrong TOTP and backup codes
    # included), or password re-logins between guesses would make the code guessable.
    if step is None and not await auth.mfa.enabled(user.key):
        await auth.lockout.succeeded(account, ex.view.ip)
    else:
        # The password is right but a second factor is due: keep the failures counted so far.
        await auth.lockout.released(reservation)
    return await _signed_in(ex, auth, user, posted, step)


async def _signed_in(
    ex: Exchange, auth: Auth, user: User, posted: Posted, step: str | None
) -> web.Response:
    # SECURITY: a new id on every login; the id the client came with is ended (no fixation).
    await begin_session(
        ex.request,
        user=user.key,
        user_uid=user.uid,
        auth_level="password" if step is None else "partial",
        ip=ex.view.ip,
    )
    await auth.audit.record(
        "login.success", user=user.username, outcome=step or "authenticated", ex=ex
    )
    if step is not None:
        status = step
        target = mfa_page(step, safe_next(posted.text("next")))
    elif user.must_change_password:
        status, target = "password_change_required", PASSWORD
    else:
        status, target = "authenticated", safe_next(posted.text("next"))
    return _redirect(target) if posted.is_form else json_response({"status": status})


@route("POST", "/.gateway/logout")
async def logout(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    auth = _auth(gw)
    await load_identity(ex, gw)
    posted = await read_posted(ex, allow_empty=True)
    record = ex.session
    if record is not None:
        check_token(ex, posted, record.csrf)
        await auth.sessions.end(record)
        user = ex.notes.get("auth.user")
        name = user.username if user is not None else record.user
        await auth.audit.record("logout", user=name, outcome="ended", ex=ex)
    await end_session(ex.request)
    return _redirect(LOGIN) if posted.is_form else web.Response(status=204)


@route("GET,POST", PASSWORD)
async def password(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    auth = _auth(gw)
    if ex.request.method in ("GET", "HEAD"):
        try:
            record, user = await signed_in(ex, gw, allow_password_change=True)
        except Unauthorized:
            if ex.wants_json:
                raise
            return _redirect(LOGIN + "?next=" + PASSWORD)
        if await _needs_step_up(auth, record, user):
            return _redirect(CHALLENGE + "?next=" + PASSWORD)
        return _password_page(auth, record.csrf, user)
    record, user = await signed_in(ex, gw, allow_password_change=True)
    posted = await read_posted(ex)
    check_token(ex, posted, record.csrf)
    if await _needs_step_up(auth, record, user):
        if posted.is_form:
            return _redirect(CHALLENGE + "?next=" + PASSWORD)
        raise MfaRequired("mfa_required")
    current, new = posted.data.get("current_password"), posted.data.get("new_password")
    if not isinstance(current, str) or not isinstance(new, str):
        raise BadRequest("missing_passwords")
    # The current password is a guess like any login: same counters, before the hash.
    try:
        reservation = await auth.lockout.reserve(user.key, ex.view.ip, ex=ex)
    except TooManyRequests as exc:
        if not posted.is_form:
            raise
        page = _password_page(auth, record.csrf, user, 429, "Too many attempts. Try again later.")
        page.headers.update(exc.headers)
        return page
    if not await auth.users.hasher.verify(user.password_hash, current):
        await auth.lockout.failed(user.key, ex=ex)
        await auth.audit.record(
            "password.changed", user=user.username, outcome="invalid_credentials", ex=ex
        )
        if posted.is_form:
            return _password_page(auth, record.csrf, user, 401, "The current password is wrong.")
        raise InvalidCredentials("wrong_current_password")
    if await auth.mfa.enabled(user.key):
        await auth.lockout.released(reservation)  # SECURITY: as at login, see there
    else:
        await auth.lockout.succeeded(user.key, ex.view.ip)
    problem = await auth.users.check_password(user.username, new)
    if problem is None and secrets.compare_digest(current.encode(), new.encode()):
        problem = "unchanged"
    if problem is not None:
        if posted.is_form:
            return _password_page(auth, record.csrf, user, 400, _PROBLEMS.get(problem, problem))
        return json_response({"error": "password_rejected", "reason": problem}, 400)
    await auth.users.set_password(user, new)
    ended = await auth.sessions.end_all(user.key, keep=record.hash)
    await auth.audit.record(
        "password.changed", user=user.username, outcome="changed", ex=ex, sessions_ended=str(ended)
    )
    if posted.is_form:
        return _redirect("/")
    return json_response({"status": "password_changed"})


async def _needs_step_up(auth: Auth, record: SessionRecord, user: User) -> bool:
    """SECURITY: a password alone (a one-factor session under `enforce: policy`) must not
    replace the password of an account with MFA on, and end the owner's sessions with it."""
    return record.auth_level != "mfa" and await auth.mfa.enabled(user.key)


_PROBLEMS = {
    "too_short": "The new password is too short.",
    "too_long": "The new password is longer than 128 characters.",
    "unchanged": "The new password must differ from the current one.",
    "breached": "This password appears in a list of breached passwords; choose another.",
    "password_check_failed": "The password could not be checked right now; try again later.",
}


def _password_page(
    auth: Auth, csrf: str, user: User, status: int = 200, error: str = ""
) -> web.Response:
    notice = ""
    if user.must_change_password:
        notice = "You must choose a new password before continuing."
    return render(
        "password.html",
        status,
        title="Change password",
        error=error,
        notice=notice,
        csrf_token=csrf,
        min_length=auth.users.min_length,
    )


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


@route("GET", ACCOUNT)
async def account(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    try:
        record, user = await signed_in(ex, gw)
    except Unauthorized:
        if ex.wants_json:
            raise
        return web.Response(
            status=302,
            headers={"Location": LOGIN + "?next=" + ACCOUNT, "Cache-Control": "no-store"},
        )
    except PasswordChangeRequired:
        if ex.wants_json:
            raise
        return _redirect(PASSWORD)
    return await account_page(ex, _auth(gw), record, user)


async def account_page(
    ex: Exchange,
    auth: Auth,
    record: SessionRecord,
    user: User,
    *,
    status: int = 200,
    error: str = "",
) -> web.Response:
    live = await auth.sessions.of_user(user.key)
    rows = [
        {
            "id": r.public_id,
            "created": _when(r.created),
            "last_seen": _when(r.last_seen),
            "ip": r.ip,
            "user_agent": r.user_agent,
            "current": r.hash == record.hash,
        }
        for r in live
    ]
    return render(
        "account.html",
        status,
        title="Your account",
        wide=True,
        error=error,
        user=user,
        sessions=rows,
        csrf_token=record.csrf,
        password_path=PASSWORD,
        mfa_enabled=await auth.mfa.enabled(user.key),
        codes_left=await auth.mfa.codes_left(user.key),
    )


@route("POST", ACCOUNT + "/sessions/{id}/revoke")
async def account_revoke(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    record, user = await signed_in(ex, gw)
    posted = await read_posted(ex)
    check_token(ex, posted, record.csrf)
    auth = _auth(gw)
    target = await revoke_session(ex, auth, user, ex.notes["params"]["id"])
    if target.hash == record.hash:
        await end_session(ex.request)
    return _redirect(ACCOUNT)


@route("POST", ACCOUNT + "/logout-all")
async def account_logout_all(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    record, user = await signed_in(ex, gw)
    posted = await read_posted(ex, allow_empty=True)
    check_token(ex, posted, record.csrf)
    auth = _auth(gw)
    await end_everywhere(ex, auth, user)
    await end_session(ex.request)
    return _redirect(LOGIN)
