"""The MFA endpoints (DESIGN.md section 5): challenge, enrollment, disable, new backup codes,
each as a server-rendered page (no script, CSRF-protected forms) and as JSON.

Every submitted code counts on the account's lockout counter like a password (reserved before
any TOTP check or Argon2, so a locked account gets 429 first). A passed challenge or confirmed
enrollment replaces the session with a new id at level `mfa`. Disable and regenerate need the
password and a current code. Never logs, echoes or audits a code, a secret or a password.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import segno
from aiohttp import web

from gateway.auth.mfa import (
    AlreadyEnrolled,
    Enrollment,
    MfaUnavailable,
    NoPendingEnrollment,
    normalize_backup_code,
)
from gateway.auth.redirects import safe_next
from gateway.auth.service import AUTH, Auth
from gateway.auth.sessions import SessionRecord
from gateway.auth.users import User
from gateway.edge.endpoints import route
from gateway.edge.identify import signed_in
from gateway.edge.state import Gateway
from gateway.http.errors import (
    BadRequest,
    GatewayError,
    InvalidCredentials,
    MfaEnrollmentRequired,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    json_response,
)
from gateway.http.exchange import Exchange
from gateway.portal.forms import Posted, check_token, read_posted
from gateway.portal.mfa_flow import CHALLENGE, SETUP, complete, mfa_session, with_next
from gateway.portal.pages import ACCOUNT, LOGIN, PASSWORD, account_page, render, sign_in_again

__all__ = ["InvalidCode", "MfaAlreadyEnabled", "MfaNotEnabled", "NoPending"]

log = logging.getLogger("gateway.mfa")
DISABLE = "/.gateway/mfa/disable"
BACKUP_CODES = "/.gateway/mfa/backup-codes"
WRONG_CODE = "That code is not right. Check your authenticator app and try again."
LOCKED = "Too many attempts. Wait a while and try again."
WRONG_PASSWORD = "The password or the code is wrong."  # noqa: S105 - a message
EXPIRED_SETUP = "That setup timed out. Scan this new code and enter the code it shows."


class InvalidCode(GatewayError):
    status, code = 401, "invalid_code"


class MfaAlreadyEnabled(GatewayError):
    status, code = 409, "mfa_already_enabled"


class MfaNotEnabled(GatewayError):
    status, code = 409, "mfa_not_enabled"


class NoPending(GatewayError):
    status, code = 409, "no_pending_enrollment"


def _auth(gw: Gateway) -> Auth:
    return gw.services[AUTH]


def _see(location: str, status: int = 303) -> web.Response:
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


def _text(posted: Posted, name: str) -> str | None:
    value = posted.text(name)
    return value if value else None


def _unavailable() -> ServiceUnavailable:
    # SECURITY: no user name or key detail in the log line; the operator runs `keys status`.
    log.error("an MFA secret cannot be opened (KEK missing from the keyring, or tampered data)")
    return ServiceUnavailable("mfa_unavailable")


async def _locked_out(ex: Exchange, auth: Auth, user: User) -> TooManyRequests | None:
    """Reserve an attempt on the account counter; the refusal if it is over a limit."""
    try:
        ex.notes["mfa.reservation"] = await auth.lockout.reserve(user.key, ex.view.ip, ex=ex)
    except TooManyRequests as exc:
        return exc
    return None


async def _release(ex: Exchange, auth: Auth) -> None:
    reservation = ex.notes.pop("mfa.reservation", None)
    if reservation is not None:
        await auth.lockout.released(reservation)


async def _second_factor(
    ex: Exchange, auth: Auth, user: User, *, code: str | None, backup: str | None
) -> bool:
    """Check a TOTP code or a backup code (the reservation is made); a wrong one is counted on
    the lockout counter and audited. A secret that cannot be opened is 503."""
    factor = "totp" if code is not None else "backup_code"
    try:
        if code is not None:
            ok = await auth.mfa.verify_totp(user.key, code)
        else:
            ok = await auth.mfa.use_backup_code(user.key, backup)
    except MfaUnavailable:
        await _release(ex, auth)
        raise _unavailable() from None
    if not ok:
        await _wrong_code(ex, auth, user, factor)
    else:
        ex.notes["mfa.factor"] = factor
    return ok


async def _wrong_code(ex: Exchange, auth: Auth, user: User, factor: str) -> None:
    """Count a wrong code on the lockout counter and audit it (never the code itself)."""
    await auth.lockout.failed(user.key, ex=ex)
    await auth.audit.record(
        "mfa.failure", user=user.username, outcome="invalid_code", ex=ex, factor=factor
    )


async def _no_session(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    """No (or no longer a) session: JSON 401; a browser goes to sign in, told why on a post."""
    if ex.wants_json:
        raise Unauthorized("no_session")
    if ex.request.method == "POST":
        posted = await read_posted(ex)
        return sign_in_again(ex, gw, safe_next(posted.text("next")))
    return _see(with_next(LOGIN, safe_next(ex.request.query.get("next"))), 302)


# -- the challenge ---------------------------------------------------------------------------
def _challenge_page(csrf: str, nxt: str, status: int = 200, error: str = "") -> web.Response:
    return render(
        "mfa.html", status, title="Two-factor check", error=error, csrf_token=csrf, next=nxt
    )


@route("GET,POST", CHALLENGE)
async def challenge(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    auth = _auth(gw)
    try:
        record, user = await mfa_session(ex, gw)
    except Unauthorized:
        return await _no_session(ex, gw)
    posted = await read_posted(ex) if ex.request.method == "POST" else None
    if posted is not None:
        check_token(ex, posted, record.csrf)
    nxt = safe_next(posted.text("next") if posted else ex.request.query.get("next"))
    form = posted is not None and posted.is_form
    if not await auth.mfa.enabled(user.key):
        if ex.wants_json or (posted is not None and not form):
            raise MfaEnrollmentRequired("mfa_enrollment_required")
        return _see(with_next(SETUP, nxt), 302 if posted is None else 303)
    if posted is None:
        if ex.wants_json:
            return json_response({"status": "mfa_required", "methods": ["totp", "backup_code"]})
        return _challenge_page(record.csrf, nxt)
    code, backup = _text(posted, "code"), _text(posted, "backup_code")
    if (code is None) == (backup is None):
        raise BadRequest("one_of_code_or_backup_code")
    refused = await _locked_out(ex, auth, user)
    if refused is not None:
        if not form:
            raise refused
        page = _challenge_page(record.csrf, nxt, 429, LOCKED)
        page.headers.update(refused.headers)
        return page
    if not await _second_factor(ex, auth, user, code=code, backup=backup):
        if form:
            return _challenge_page(record.csrf, nxt, 401, WRONG_CODE)
        raise InvalidCode("invalid_code")
    await complete(ex, auth, user)
    await auth.audit.record(
        "mfa.success",
        user=user.username,
        outcome="authenticated",
        ex=ex,
        factor=ex.notes["mfa.factor"],
    )
    if form:
        response = _see(PASSWORD if user.must_change_password else nxt)
    else:
        status = "password_change_required" if user.must_change_password else "authenticated"
        response = json_response({"status": status})
    return response


# -- enrollment ------------------------------------------------------------------------------
def _qr_svg(enrollment: Enrollment) -> str:
    return segno.make(enrollment.uri, error="m").svg_inline(scale=4, border=2, omitsize=True)


def _setup_page(
    csrf: str, nxt: str, enrollment: Enrollment | None, status: int = 200, error: str = ""
) -> web.Response:
    return render(
        "mfa_setup.html",
        status,
        title="Set up two-factor sign-in",
        error=error,
        csrf_token=csrf,
        next=nxt,
        enrollment=enrollment,
        qr_svg=_qr_svg(enrollment) if enrollment is not None else "",
        account_path=ACCOUNT,
    )


def _codes_page(codes: list[str], nxt: str) -> web.Response:
    return render(
        "mfa_codes.html",
        title="Your backup codes",
        notice="Save these codes now: they will not be shown again. Each works once.",
        codes=codes,
        next=nxt,
    )


@route("GET,POST", SETUP)
async def setup(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    auth = _auth(gw)
    try:
        record, user = await mfa_session(ex, gw)
    except Unauthorized:
        return await _no_session(ex, gw)
    if ex.request.method != "POST":
        nxt = safe_next(ex.request.query.get("next"))
        try:
            enrollment = await auth.mfa.begin(user.key, user.username)
        except AlreadyEnrolled:
            if ex.wants_json:
                raise MfaAlreadyEnabled("mfa_already_enabled") from None
            error = "Two-factor sign-in is already on. Turn it off on your account page first."
            return _setup_page(record.csrf, nxt, None, 409, error)
        except MfaUnavailable:
            raise _unavailable() from None
        if ex.wants_json:
            return json_response(
                {
                    "secret": enrollment.secret_b32,
                    "otpauth_uri": enrollment.uri,
                    "qr_svg": _qr_svg(enrollment),
                }
            )
        return _setup_page(record.csrf, nxt, enrollment)
    posted = await read_posted(ex)
    check_token(ex, posted, record.csrf)
    return await _confirm(ex, auth, record, user, posted)


async def _confirm(
    ex: Exchange, auth: Auth, record: SessionRecord, user: User, posted: Posted
) -> web.StreamResponse:
    nxt = safe_next(posted.text("next"))
    code = _text(posted, "code")
    if code is None:
        raise BadRequest("missing_code")

    async def again(status: int, error: str) -> web.Response:
        try:
            pending = await auth.mfa.pending(user.key, user.username)
        except MfaUnavailable:
            pending = None
        return _setup_page(record.csrf, nxt, pending, status, error)

    refused = await _locked_out(ex, auth, user)
    if refused is not None:
        if not posted.is_form:
            raise refused
        page = await again(429, LOCKED)
        page.headers.update(refused.headers)
        return page
    try:
        codes = await auth.mfa.confirm(user.key, code)
    except (NoPendingEnrollment, AlreadyEnrolled) as exc:
        await _release(ex, auth)
        if isinstance(exc, AlreadyEnrolled):
            if posted.is_form:
                return await again(409, "Two-factor sign-in is already on.")
            raise MfaAlreadyEnabled("mfa_already_enabled") from None
        if not posted.is_form:
            raise NoPending("no_pending_enrollment") from None
        fresh = await auth.mfa.begin(user.key, user.username)
        return _setup_page(record.csrf, nxt, fresh, 409, EXPIRED_SETUP)
    except MfaUnavailable:
        await _release(ex, auth)
        raise _unavailable() from None
    if codes is None:
        await _wrong_code(ex, auth, user, "totp")
        if posted.is_form:
            return await again(401, WRONG_CODE)
        raise InvalidCode("invalid_code")
    await complete(ex, auth, user)
    await auth.audit.record("mfa.enrolled", user=user.username, outcome="enrolled", ex=ex)
    if posted.is_form:
        response = _codes_page(codes, PASSWORD if user.must_change_password else nxt)
    else:
        response = json_response({"status": "mfa_enabled", "backup_codes": codes})
    return response


# -- disable and new backup codes (password and a current code) -----------------------------
Action = Callable[[Auth, User, bool], Awaitable[web.StreamResponse]]


async def _reauthenticated(
    ex: Exchange, gw: Gateway, event: str, action: Action
) -> web.StreamResponse:
    auth = _auth(gw)
    record, user = await signed_in(ex, gw)
    posted = await read_posted(ex)
    check_token(ex, posted, record.csrf)
    password, code = _text(posted, "password"), _text(posted, "code")
    form = posted.is_form

    async def refuse(exc: GatewayError, message: str) -> web.StreamResponse:
        if not form:
            raise exc
        page = await account_page(ex, auth, record, user, status=exc.status, error=message)
        page.headers.update(exc.headers)
        return page

    if password is None or code is None:
        return await refuse(
            BadRequest("missing_password_or_code"), "Enter your password and a code."
        )
    if not await auth.mfa.enabled(user.key):
        return await refuse(MfaNotEnabled("mfa_not_enabled"), "Two-factor sign-in is off.")
    refused = await _locked_out(ex, auth, user)
    if refused is not None:
        return await refuse(refused, LOCKED)
    auth.users.verifications += 1
    if not await auth.users.hasher.verify(user.password_hash, password):
        await auth.lockout.failed(user.key, ex=ex)
        await auth.audit.record(event, user=user.username, outcome="invalid_password", ex=ex)
        return await refuse(InvalidCredentials("invalid_credentials"), WRONG_PASSWORD)
    # Only a right password spends a code (so a wrong one cannot burn a TOTP step).
    backup = normalize_backup_code(code) is not None
    checked = await _second_factor(
        ex, auth, user, code=None if backup else code, backup=code if backup else None
    )
    if not checked:
        return await refuse(InvalidCredentials("invalid_credentials"), WRONG_PASSWORD)
    await auth.lockout.succeeded(user.key, ex.view.ip)
    return await action(auth, user, form)


@route("POST", DISABLE)
async def disable(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    async def action(auth: Auth, user: User, form: bool) -> web.StreamResponse:
        await auth.mfa.disable(user.key)
        await auth.audit.record("mfa.disabled", user=user.username, outcome="disabled", ex=ex)
        return _see(ACCOUNT) if form else json_response({"status": "mfa_disabled"})

    return await _reauthenticated(ex, gw, "mfa.disabled", action)


@route("POST", BACKUP_CODES)
async def backup_codes(ex: Exchange, gw: Gateway) -> web.StreamResponse:
    async def action(auth: Auth, user: User, form: bool) -> web.StreamResponse:
        codes = await auth.mfa.regenerate_codes(user.key)
        await auth.audit.record(
            "mfa.backup_codes_regenerated", user=user.username, outcome="regenerated", ex=ex
        )
        return _codes_page(codes, ACCOUNT) if form else json_response({"backup_codes": codes})

    return await _reauthenticated(ex, gw, "mfa.backup_codes_regenerated", action)
