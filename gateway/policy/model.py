"""Compiled policy data: what a rule is once loaded, who is asking, and what was decided.

Owns the frozen value types of the policy engine. Everything here is immutable after
construction so a `PolicySet` can be shared by every in-flight request while a reload builds the
next one. Never reads files, never parses YAML and never imports the web layer: the loader builds
these values and the matcher indexes them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

__all__ = [
    "ACCESS_LEVELS",
    "AccessLevel",
    "AuthLevel",
    "Decision",
    "Encrypt",
    "Match",
    "Outcome",
    "PathPattern",
    "PolicySet",
    "Principal",
    "RateLimit",
    "Rule",
    "RuleLookup",
]

AccessLevel = Literal["public", "authenticated", "mfa", "deny"]
AuthLevel = Literal["none", "partial", "password", "mfa"]
Outcome = Literal["allow", "login", "mfa", "mfa_enroll", "forbidden"]
ACCESS_LEVELS: tuple[str, ...] = ("public", "authenticated", "mfa", "deny")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class PathPattern:
    """One compiled entry of `match.paths`.

    `source` is what the operator wrote. `literal` is set when the pattern has no wildcard (the
    path must equal it); otherwise `regex` full-matches the (casefolded, when configured) path.
    `prefix` holds the literal leading segments every matching path starts with; the matcher
    indexes rules by it.
    """

    source: str
    literal: str | None
    regex: re.Pattern[str] | None
    prefix: tuple[str, ...]

    def matches(self, path: str) -> bool:
        if self.literal is not None:
            return path == self.literal
        assert self.regex is not None
        return self.regex.fullmatch(path) is not None


@dataclass(frozen=True, slots=True)
class Match:
    """Request conditions of a rule; an empty tuple/frozenset means "any"."""

    paths: tuple[PathPattern, ...] = ()
    methods: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()  # lower-case, no port, no trailing dot; may be "*.x.y"
    networks: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`count` requests per `per_seconds`, counted per user (anonymous: per IP) or per IP."""

    count: int
    per_seconds: int
    by: Literal["user", "ip"] = "user"


@dataclass(frozen=True, slots=True)
class Encrypt:
    """Envelope encryption of one rule. At most one request kind is set.

    `request_kind` is "form_fields", "json_fields", "body" or None; `response` is "tokens"
    (decrypt field tokens found in the response), "body" (whole-body envelope) or None.
    """

    form_fields: tuple[str, ...] = ()
    json_fields: tuple[str, ...] = ()
    body: bool = False
    response: Literal["tokens", "body"] | None = None
    allow_plaintext: bool = False
    scope: str = "user"  # "user" or "role:NAME"

    @property
    def request_kind(self) -> Literal["form_fields", "json_fields", "body"] | None:
        if self.form_fields:
            return "form_fields"
        if self.json_fields:
            return "json_fields"
        if self.body:
            return "body"
        return None


@dataclass(frozen=True, slots=True)
class Rule:
    """One policy rule. `index` is its global precedence (0 = first file's first rule)."""

    name: str
    file: str
    index: int
    match: Match
    access: AccessLevel
    roles: frozenset[str] = frozenset()
    encrypt: Encrypt | None = None
    rate_limit: RateLimit | None = None
    # Refuse state-changing requests from another site; None: the config's default.
    cross_site_check: bool | None = None

    @property
    def where(self) -> str:
        return f"{Path(self.file).name}:{self.name}"


class RuleLookup(Protocol):
    """The compiled lookup a PolicySet asks (built by `gateway.policy.matcher`): the model
    names only its shape, so the values never import the code that indexes them."""

    def match(self, method: str, host: str, path: str, client_ip: str) -> Rule | None: ...


@dataclass(frozen=True, slots=True)
class PolicySet:
    """A whole validated policy: rules in precedence order plus the options they were built with.

    `sources` maps each loaded file to the `st_mtime_ns` it had when read. `index` is the compiled
    lookup structure; build a PolicySet with `gateway.policy.matcher.build_policy_set`.
    """

    rules: tuple[Rule, ...]
    default_access: AccessLevel
    case_insensitive_paths: bool
    sources: tuple[tuple[str, int], ...]
    index: RuleLookup = field(repr=False, compare=False)

    def match(self, method: str, host: str, path: str, client_ip: str) -> Rule | None:
        """First rule matching the canonical `path`, or None (then `default_access` applies)."""
        return self.index.match(method, host, path, client_ip)

    def rule_named(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. `auth_level` "partial" is a login that still owes the MFA step."""

    user: str | None = None
    roles: frozenset[str] = frozenset()
    auth_level: AuthLevel = "none"
    mfa_enabled: bool = False

    @classmethod
    def anonymous(cls) -> Principal:
        return cls()


@dataclass(frozen=True, slots=True)
class Decision:
    """What the pipeline must do. `reason` is machine-readable (logged as a reason id)."""

    outcome: Outcome
    rule: Rule | None
    reason: str

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"
