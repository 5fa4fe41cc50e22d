"""Server-side session records on the store, and the session cookie's settings.

The cookie carries a 256-bit random secret (`secrets.token_urlsafe(32)`) and, after a dot, the
user's store key in base64url; the store keeps only SHA-256 of the secret (kind "session"), so
a copy of the store opens no session. The user part lets the identify step fetch the session,
the user record and its MFA flag in one store round trip (`load_with`); it is only a hint: a
session whose record names another user is no session. Each user has an index of its session
hashes (`sessions:<user key>`) for listing, logout-all and revocation. Expiry is checked
against the injected clock (idle and absolute timeouts); the store TTL only cleans up. The
idle refresh writes at most once a minute. A partial session (password done, MFA pending)
lives at most PARTIAL_LIFETIME (5 minutes). A malformed, unknown or expired cookie is simply
no session. Never logs a session id, its hash or a cookie value.

The request-facing API is aiohttp-session's (`gateway.edge.session` is its storage over these
records); this module is what the storage and the CLI share.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from aiohttp import web

from gateway.clock import Clock
from gateway.config import Config
from gateway.metrics import SESSIONS_CREATED
from gateway.store.base import Store

__all__ = ["CookieSettings", "SessionRecord", "Sessions", "LEVELS", "FULL_LEVELS"]

KIND = "session"
LEVELS = ("partial", "password", "mfa")
FULL_LEVELS = frozenset({"password", "mfa"})
REFRESH_EVERY = 60.0
PARTIAL_LIFETIME = 300.0  # a password-only session waiting for its MFA step
# The secret, then (cookies issued since the user hint) a dot and the user's store key.
_TOKEN = re.compile(r"^([A-Za-z0-9_-]{43})(?:\.([A-Za-z0-9_-]{2,400}))?$")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def digest(token: str) -> str:
    """The store key of a session: SHA-256 of the token's secret part."""
    return hashlib.sha256(token.partition(".")[0].encode("ascii")).hexdigest()


def new_token(user: str) -> str:
    hint = base64.urlsafe_b64encode(user.encode()).rstrip(b"=").decode("ascii")
    return f"{secrets.token_urlsafe(32)}.{hint}"


def user_hint(token: str) -> str | None:
    """The user key a well-formed token names, or None (an older token, or not decodable)."""
    match = _TOKEN.match(token)
    if match is None or match.group(2) is None:
        return None
    part = match.group(2)
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def well_formed(token: str) -> bool:
    return _TOKEN.match(token) is not None


def public_id(session_hash: str) -> str:
    """An opaque id for listing and revoking: derived from the hash, useless as a cookie."""
    return hashlib.sha256(b"public-id:" + session_hash.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class CookieSettings:
    name: str
    secure: bool
    same_site: str
    csrf_name: str

    @classmethod
    def from_config(cls, config: Config) -> CookieSettings:
        setting = config.session.secure
        if setting == "auto":
            secure = config.listen_host.lower() not in _LOCAL_HOSTS
        else:
            secure = bool(setting)
        prefix = "__Host-" if secure else ""
        return cls(
            name=prefix + config.session.cookie_name,
            secure=secure,
            same_site=config.session.same_site.capitalize(),
            csrf_name=prefix + "gateway_csrf",
        )

    def set(self, response: web.StreamResponse, name: str, value: str) -> None:
        response.set_cookie(
            name, value, path="/", httponly=True, secure=self.secure, samesite=self.same_site
        )

    def clear(self, response: web.StreamResponse, name: str) -> None:
        response.set_cookie(
            name,
            "",
            path="/",
            max_age=0,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            httponly=True,
            secure=self.secure,
            samesite=self.same_site,
        )


@dataclass(slots=True)
class SessionRecord:
    user: str  # the user's store key
    auth_level: str
    created: float
    last_seen: float
    ip: str
    user_agent: str
    csrf: str
    user_uid: str  # a re-created user of the same name is not the old one
    hash: str = field(default="", compare=False)

    @property
    def public_id(self) -> str:
        return public_id(self.hash)

    def encode(self) -> bytes:
        data = asdict(self)
        del data["hash"]
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes, session_hash: str) -> SessionRecord:
        data = json.loads(raw)
        record = cls(**data, hash=session_hash)
        if record.auth_level not in LEVELS or not isinstance(record.user, str):
            raise ValueError("bad session record")
        return record


class Sessions:
    def __init__(
        self, store: Store, clock: Clock, cookie: CookieSettings, *, idle: float, absolute: float
    ) -> None:
        self.store = store
        self.clock = clock
        self.cookie = cookie
        self.idle = idle
        self.absolute = absolute

    # -- the cookie ----------------------------------------------------------------------------
    def read_cookie(self, request: web.Request) -> str | None:
        """The session token the client sent, if it has the shape of one."""
        if "Cookie" not in request.headers:
            return None  # most requests of a public route: skip building request.cookies
        try:
            value = request.cookies.get(self.cookie.name)
        except Exception:  # noqa: BLE001 - an unparsable Cookie header is no session
            return None
        if not value or not well_formed(value):
            return None
        return value

    def set_cookie(self, response: web.StreamResponse, token: str) -> None:
        self.cookie.set(response, self.cookie.name, token)

    def clear_cookie(self, response: web.StreamResponse) -> None:
        self.cookie.clear(response, self.cookie.name)

    # -- records -------------------------------------------------------------------------------
    def _absolute(self, record: SessionRecord) -> float:
        if record.auth_level == "partial":
            return min(self.absolute, PARTIAL_LIFETIME)
        return self.absolute

    def _ttl(self, record: SessionRecord, now: float) -> float:
        end = min(record.last_seen + self.idle, record.created + self._absolute(record))
        return max(1.0, end - now)

    def _expired(self, record: SessionRecord, now: float) -> bool:
        return now - record.created >= self._absolute(record) or now - record.last_seen >= self.idle

    async def create(
        self,
        user: str,
        *,
        user_uid: str,
        auth_level: str,
        ip: str,
        user_agent: str,
        replaces: str | None = None,
    ) -> tuple[str, SessionRecord]:
        """A new session (and its token); the session `replaces` names is ended (no fixation)."""
        SESSIONS_CREATED.inc()
        if replaces is not None:
            await self.end_token(replaces)
        now = self.clock.now()
        token = new_token(user)
        record = SessionRecord(
            user=user,
            auth_level=auth_level,
            created=now,
            last_seen=now,
            ip=ip,
            user_agent=user_agent[:256],
            csrf=secrets.token_urlsafe(32),
            user_uid=user_uid,
            hash=digest(token),
        )
        await self.store.put(KIND, record.hash, record.encode(), ttl=self._ttl(record, now))
        await self.store.index_add(_index(user), record.hash)
        return token, record

    async def load(self, token: str) -> SessionRecord | None:
        record, _ = await self.load_with(token, lambda user: ())
        return record

    async def load_with(
        self, token: str, also: Callable[[str], Sequence[tuple[str, str]]]
    ) -> tuple[SessionRecord | None, list[bytes | None]]:
        """The live session of `token` and the values of `also(user key)`, read together in one
        store call when the token names its user (else two: the session, then the others)."""
        session_hash = digest(token)
        hint = user_hint(token)
        if hint is not None:
            extra = list(also(hint))
            raw, *values = await self.store.get_many([(KIND, session_hash), *extra])
            record = _decode(raw, session_hash)
            if record is not None and record.user != hint:
                return None, []  # a hint that lies opens nothing (and ends nothing)
        else:
            record = await self._get(session_hash)
            values = []
        if record is None:
            return None, []
        now = self.clock.now()
        if self._expired(record, now):
            await self.end(record)
            return None, []
        if now - record.last_seen >= REFRESH_EVERY:
            record.last_seen = now
            await self.store.put(KIND, session_hash, record.encode(), ttl=self._ttl(record, now))
        if hint is None:
            extra = list(also(record.user))
            values = await self.store.get_many(extra) if extra else []
        return record, values

    async def _get(self, session_hash: str) -> SessionRecord | None:
        return _decode(await self.store.get(KIND, session_hash), session_hash)

    async def end(self, record: SessionRecord) -> None:
        await self.store.delete(KIND, record.hash)
        await self.store.index_remove(_index(record.user), record.hash)

    async def end_token(self, token: str) -> SessionRecord | None:
        if not well_formed(token):
            return None
        record = await self._get(digest(token))
        if record is not None:
            await self.end(record)
        return record

    async def of_user(self, user: str) -> list[SessionRecord]:
        """The user's live sessions, oldest first; index entries whose record is gone are pruned."""
        now = self.clock.now()
        live = []
        for session_hash in await self.store.index_members(_index(user)):
            record = await self._get(session_hash)
            if record is None or self._expired(record, now):
                await self.store.index_remove(_index(user), session_hash)
                continue
            live.append(record)
        return sorted(live, key=lambda r: r.created)

    async def end_all(self, user: str, *, keep: str | None = None) -> int:
        """End every session of `user` except the one whose hash is `keep`. Returns the count."""
        ended = 0
        for session_hash in await self.store.index_members(_index(user)):
            if session_hash == keep:
                continue
            await self.store.delete(KIND, session_hash)
            await self.store.index_remove(_index(user), session_hash)
            ended += 1
        return ended

    async def find(self, user: str, pid: str) -> SessionRecord | None:
        for record in await self.of_user(user):
            if secrets.compare_digest(record.public_id, pid):
                return record
        return None

    async def all(self) -> list[SessionRecord]:
        now = self.clock.now()
        out = []
        for session_hash, raw in await self.store.scan(KIND):
            try:
                record = SessionRecord.decode(raw, session_hash)
            except (ValueError, TypeError):
                continue
            if not self._expired(record, now):
                out.append(record)
        return sorted(out, key=lambda r: r.created)


def _index(user: str) -> str:
    return "sessions:" + user


def _decode(raw: bytes | None, session_hash: str) -> SessionRecord | None:
    if raw is None:
        return None
    try:
        return SessionRecord.decode(raw, session_hash)
    except (ValueError, TypeError):
        return None
