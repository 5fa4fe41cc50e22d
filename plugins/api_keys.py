"""api_keys: machine clients authenticate with `Authorization: Bearer <key>`.

Keys are made by `gateway apikeys create NAME --role R`, shown once, and stored hashed: the
store keeps SHA-256 of the key's 256-bit random secret under the key's public id (kind
"apikey"), plus a name index (kind "apikey_name"). A key is `gwk_<id>_<secret>`; the id finds
the record, the secret's hash is compared in constant time. No Argon2: the secret is random
and 256 bits long, so a fast hash is as strong as a slow one, and every API request is
checked. Every request reads the record (no cache): a revoke takes effect at once on every
instance. An API key identity carries the key's roles and counts as a password-level
sign-in: it never satisfies an `mfa` rule. Our keys are stripped from the upstream request.
Never logs or stores a key or its secret.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from multidict import CIMultiDict
from pydantic import BaseModel, ConfigDict, Field

from gateway.hooks import PluginContext
from gateway.http.errors import GatewayError
from gateway.http.exchange import Exchange
from gateway.http.headers import Identity
from gateway.metrics import AUTH_ATTEMPTS

__all__ = ["ApiKeys", "InvalidApiKey", "Plugin"]

KIND, NAMES = "apikey", "apikey_name"
PREFIX = "gwk_"
_KEY = re.compile(r"^gwk_([0-9a-f]{16})_([A-Za-z0-9_\-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
_ROLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
_DUMMY_HASH = hashlib.sha256(b"not a key").hexdigest()


class InvalidApiKey(GatewayError):
    status, code = 401, "invalid_api_key"


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Prefixed so an upstream can never mistake a key named "admin" for the user "admin".
    user_prefix: str = Field("apikey:", max_length=32)
    # Bearer tokens that are not ours: `refuse` (401) or `pass` them to the upstream untouched.
    other_bearer_tokens: Literal["refuse", "pass"] = "refuse"
    # How often (seconds) a key's last-used time is written at most; 0 never writes it.
    last_used_interval: float = Field(60.0, ge=0)


def _digest(secret: str) -> str:
    # SECURITY: a header's non-UTF-8 bytes arrive as surrogates; hash them, never crash (500).
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class ApiKeys:
    """The key records in the store; used by the plugin and by the CLI verbs."""

    def __init__(self, store: Any, clock: Any) -> None:
        self.store = store
        self.clock = clock

    async def create(self, name: str, roles: list[str]) -> str:
        if not _NAME.match(name):
            raise ValueError("invalid key name (letters, digits, . _ -; at most 64)")
        bad = [r for r in roles if not _ROLE.match(r)]
        if bad:
            raise ValueError("invalid role name (letters, digits, . _ : -)")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        if not await self.store.put_if_absent(NAMES, name, key_id.encode()):
            raise ValueError(f"an API key named {name} exists already")
        record = {
            "name": name,
            "roles": list(dict.fromkeys(roles)),
            "hash": _digest(secret),
            "created": self.clock.now(),
            "last_used": None,
        }
        await self.store.put(KIND, key_id, json.dumps(record).encode())
        return f"{PREFIX}{key_id}_{secret}"

    async def list(self) -> list[dict[str, Any]]:
        out = []
        for key_id, raw in await self.store.scan(KIND):
            record = json.loads(raw)
            out.append({"id": key_id, **{k: v for k, v in record.items() if k != "hash"}})
        return sorted(out, key=lambda r: r["name"])

    async def revoke(self, name: str) -> bool:
        raw = await self.store.get(NAMES, name)
        if raw is None:
            return False
        await self.store.delete(KIND, raw.decode())
        await self.store.delete(NAMES, name)
        return True

    async def verify(self, token: str) -> tuple[str, dict[str, Any], bytes] | None:
        """(id, record, raw record) when `token` is a live key, else None."""
        match = _KEY.match(token)
        key_id, secret = (match.group(1), match.group(2)) if match else ("", token)
        raw = await self.store.get(KIND, key_id) if match else None
        record = json.loads(raw) if raw is not None else None
        expected = record["hash"] if record is not None else _DUMMY_HASH
        # SECURITY: constant-time comparison; a missing record costs the same hash and compare.
        if not hmac.compare_digest(_digest(secret).encode(), expected.encode()) or raw is None:
            return None
        return key_id, record, raw


def _token(value: str) -> str | None:
    """The token of a `Bearer` Authorization value (possibly empty), else None."""
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else None


def _bearer(ex: Exchange) -> str | None:
    values = ex.request.headers.getall("Authorization", [])
    bearer = [t for t in map(_token, values) if t is not None]
    if not bearer:
        return None
    if len(values) > 1:
        raise InvalidApiKey("several_authorization_headers")
    return bearer[0]


class Plugin:
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options
        self.keys: ApiKeys | None = None
        self._written: dict[str, float] = {}

    async def on_startup(self, ctx: PluginContext) -> None:
        self.keys = ApiKeys(ctx.services["store"], ctx.clock)

    async def authenticate(self, ex: Exchange) -> Identity | None:
        token = _bearer(ex)
        if token is None:
            return None
        if not token.startswith(PREFIX) and self.options.other_bearer_tokens == "pass":
            return None
        assert self.keys is not None
        found = await self.keys.verify(token)
        if found is None:
            AUTH_ATTEMPTS.labels("api_key", "failure").inc()
            raise InvalidApiKey("invalid_api_key")
        key_id, record, raw = found
        AUTH_ATTEMPTS.labels("api_key", "success").inc()
        await self._touch(key_id, record, raw)
        name = self.options.user_prefix + record["name"]
        return Identity(user=name, roles=tuple(record.get("roles", ())))

    async def _touch(self, key_id: str, record: dict[str, Any], raw: bytes) -> None:
        """Record the last use at most every `last_used_interval` seconds per worker; a
        compare-and-set, so a key revoked meanwhile is never written back."""
        interval = self.options.last_used_interval
        now = self.keys.clock.now() if self.keys else 0.0
        if not interval or now - self._written.get(key_id, float("-inf")) < interval:
            return
        self._written[key_id] = now
        updated = json.dumps({**record, "last_used": now}).encode()
        await self.keys.store.compare_and_set(KIND, key_id, raw, updated)

    async def before_forward(self, ex: Exchange, headers: CIMultiDict[str]) -> None:
        values = headers.getall("Authorization", [])
        if any((_token(v) or "").startswith(PREFIX) for v in values):
            # SECURITY: the key is the gateway's credential; the upstream never sees it.
            headers.popall("Authorization")

    @staticmethod
    def commands(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
        parser = verbs.add_parser("apikeys", parents=[common], help="manage API keys")
        sub = parser.add_subparsers(dest="apikeys_verb", required=True, metavar="ACTION")
        create = sub.add_parser("create", parents=[common], help="make a key (shown once)")
        create.add_argument("name", metavar="NAME")
        create.add_argument("--role", action="append", default=[], metavar="R")
        create.set_defaults(func=_command(_create))
        listing = sub.add_parser("list", parents=[common], help="list keys")
        listing.add_argument("--json", action="store_true", help="a JSON array, for scripts")
        listing.set_defaults(func=_command(_list))
        revoke = sub.add_parser("revoke", parents=[common], help="revoke a key by name")
        revoke.add_argument("name", metavar="NAME")
        revoke.set_defaults(func=_command(_revoke))


Verb = Callable[[ApiKeys, Any, argparse.Namespace], Awaitable[int]]


def _command(verb: Verb) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from gateway.auth.audit import Audit
        from gateway.cli.common import fail, load
        from gateway.clock import SystemClock
        from gateway.store import StoreError, describe_failure, open_store

        config = load(args)

        async def main() -> int:
            store = await open_store(config.store.url, base_dir=config.base_dir)
            try:
                clock = SystemClock()
                audit = Audit.for_config(store, clock, config)
                return await verb(ApiKeys(store, clock), audit, args)
            finally:
                await store.close()

        try:
            return asyncio.run(main())
        except ValueError as exc:
            return fail(str(exc))
        except StoreError as exc:
            return fail(describe_failure(config.store.url, exc))

    return run


async def _create(keys: ApiKeys, audit: Any, args: argparse.Namespace) -> int:
    key = await keys.create(args.name, args.role)
    await audit.record("apikey.created", user=None, outcome="created", key_name=args.name)
    print(key)
    print(f"# API key {args.name!r} created; it is shown only this once.", flush=True)
    return 0


async def _list(keys: ApiKeys, audit: Any, args: argparse.Namespace) -> int:
    from gateway.cli.common import print_table

    rows = [
        {k: r.get(k) for k in ("name", "roles", "created", "last_used")} for r in await keys.list()
    ]
    columns = (
        ("name", "NAME"),
        ("roles", "ROLES"),
        ("created", "CREATED"),
        ("last_used", "LAST USED"),
    )
    print_table(
        rows, columns, as_json=args.json, times=("created", "last_used"), empty="no API keys"
    )
    return 0


async def _revoke(keys: ApiKeys, audit: Any, args: argparse.Namespace) -> int:
    if not await keys.revoke(args.name):
        print(f"gateway: no API key named {args.name}", file=sys.stderr)
        return 1
    await audit.record("apikey.revoked", user=None, outcome="revoked", key_name=args.name)
    print(f"revoked {args.name}")
    return 0
