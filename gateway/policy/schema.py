"""The shape of one policy rule: turns a YAML mapping into a compiled `Rule`, or problems.

Owns key-by-key validation of a rule document (unknown keys, types, access levels, methods,
CIDRs, host names, globs and regexes, encryption and rate-limit settings). Every problem is
reported through the `report` callback with its key path, so the loader can list all of them at
once. Never touches files and never decides anything about requests.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from gateway.policy.matcher import compile_host, compile_path
from gateway.policy.model import ACCESS_LEVELS, Encrypt, Match, RateLimit, Rule

__all__ = ["Report", "parse_rate_limit", "parse_rule"]

Report = Callable[[str, object, str], None]  # (key path, value, expected)

RULE_KEYS = ("name", "match", "access", "roles", "encrypt", "rate_limit", "cross_site_check")
_MATCH_KEYS = ("paths", "methods", "hosts", "networks")
_ENCRYPT_KEYS = ("request", "response", "allow_plaintext", "scope")
_REQUEST_KINDS = ("form_fields", "json_fields", "body")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_METHOD = re.compile(r"[A-Z][A-Z-]{0,19}")
_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_JSON_PATH = re.compile(r"\$(?:\.[A-Za-z0-9_-]+|\[(?:\d+|\*)\])+")
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*")
_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_NEEDS_USER = ("authenticated", "mfa")


def _unknown_keys(raw: dict[str, Any], allowed: tuple[str, ...], base: str, report: Report) -> None:
    for key in raw:
        if key not in allowed:
            report(f"{base}.{key}" if base else str(key), key, "one of " + ", ".join(allowed))


def _string_list(raw: object, key: str, report: Report, what: str) -> list[tuple[str, str]] | None:
    """A non-empty list of strings -> [(key path, item)]; None (reported) otherwise."""
    if not isinstance(raw, list) or not raw:
        report(key, raw, f"a non-empty list of {what}")
        return None
    items = []
    for i, item in enumerate(raw):
        if isinstance(item, str) and item:
            items.append((f"{key}[{i}]", item))
        else:
            report(f"{key}[{i}]", item, what)
    return items


def parse_rule(
    raw: object, *, file: str, index: int, case_insensitive: bool, report: Report
) -> Rule | None:
    """Validate one rule; return it when every key is valid, else None (problems reported)."""
    if not isinstance(raw, dict):
        report("", raw, "a mapping with name, match and access")
        return None
    problems_before = _Counter(report)
    report = problems_before
    _unknown_keys(raw, RULE_KEYS, "", report)
    for required in ("name", "match", "access"):
        if required not in raw:
            report(required, None, f"'{required}' (required)")
    name = raw.get("name")
    if "name" in raw and not (isinstance(name, str) and _NAME.fullmatch(name)):
        report("name", name, "a name of letters, digits, '_', '.', ':', '-' (at most 64)")
    access = raw.get("access")
    if "access" in raw and access not in ACCESS_LEVELS:
        report("access", access, "one of " + " | ".join(ACCESS_LEVELS))
    match = _parse_match(raw.get("match"), case_insensitive, report) if "match" in raw else None
    roles = _parse_roles(raw, access, report)
    encrypt = _parse_encrypt(raw["encrypt"], access, report) if "encrypt" in raw else None
    rate_limit = None
    if "rate_limit" in raw:
        rate_limit = parse_rate_limit(raw["rate_limit"], "rate_limit", report)
    cross_site = raw.get("cross_site_check")
    if "cross_site_check" in raw and not isinstance(cross_site, bool):
        report("cross_site_check", cross_site, "true or false")
    if problems_before.count or match is None:
        return None
    return Rule(
        name=name,  # type: ignore[arg-type]
        file=file,
        index=index,
        match=match,
        access=access,  # type: ignore[arg-type]
        roles=roles,
        encrypt=encrypt,
        rate_limit=rate_limit,
        cross_site_check=cross_site,
    )


class _Counter:
    """Wraps a report callback and counts what passes through it."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self.count = 0

    def __call__(self, key: str, value: object, expected: str) -> None:
        self.count += 1
        self._report(key, value, expected)


def _parse_match(raw: object, case_insensitive: bool, report: Report) -> Match | None:
    if not isinstance(raw, dict):
        report("match", raw, "a mapping with any of " + ", ".join(_MATCH_KEYS))
        return None
    _unknown_keys(raw, _MATCH_KEYS, "match", report)
    paths, methods, hosts, networks = [], set(), set(), []
    if "paths" in raw:
        for key, item in _string_list(raw["paths"], "match.paths", report, "path globs") or ():
            try:
                paths.append(compile_path(item, case_insensitive=case_insensitive))
            except ValueError as exc:
                report(key, item, str(exc))
    if "methods" in raw:
        for key, item in _string_list(raw["methods"], "match.methods", report, "methods") or ():
            if _METHOD.fullmatch(item):
                methods.add(item)
            else:
                report(key, item, "an upper-case HTTP method such as GET, HEAD, POST")
    if "hosts" in raw:
        for key, item in _string_list(raw["hosts"], "match.hosts", report, "host names") or ():
            try:
                hosts.add(compile_host(item))
            except ValueError as exc:
                report(key, item, str(exc))
    if "networks" in raw:
        for key, item in _string_list(raw["networks"], "match.networks", report, "CIDRs") or ():
            try:
                networks.append(ipaddress.ip_network(item, strict=True))
            except ValueError as exc:
                report(key, item, f"a CIDR such as 10.0.0.0/8 or 2001:db8::/32 ({exc})")
    return Match(tuple(paths), frozenset(methods), frozenset(hosts), tuple(networks))


def _parse_roles(raw: dict[str, Any], access: object, report: Report) -> frozenset[str]:
    if "roles" not in raw:
        return frozenset()
    roles = set()
    for key, item in _string_list(raw["roles"], "roles", report, "role names") or ():
        if _ROLE.fullmatch(item):
            roles.add(item)
        else:
            report(key, item, "a role name of letters, digits, '_', '.', ':', '-'")
    if access in ("public", "deny"):
        report("roles", raw["roles"], "no roles on a public or deny rule (roles need a user)")
    return frozenset(roles)


def _parse_encrypt(raw: object, access: object, report: Report) -> Encrypt | None:
    if not isinstance(raw, dict):
        report("encrypt", raw, "a mapping with request and/or response")
        return None
    _unknown_keys(raw, _ENCRYPT_KEYS, "encrypt", report)
    if access in ("public", "deny"):
        report("encrypt", raw, "no encrypt on a public or deny rule (keys belong to a user)")
    fields: dict[str, Any] = {}
    if "request" in raw:
        fields.update(_parse_encrypt_request(raw["request"], report))
    response = raw.get("response")
    if response not in (None, "tokens", "body"):
        report("encrypt.response", response, "tokens | body")
    if "request" not in raw and response is None:
        report("encrypt", raw, "at least one of request or response")
    allow_plaintext = raw.get("allow_plaintext", False)
    if not isinstance(allow_plaintext, bool):
        report("encrypt.allow_plaintext", allow_plaintext, "true or false")
    scope = raw.get("scope", "user")
    if not (
        scope == "user"
        or (isinstance(scope, str) and scope.startswith("role:") and _ROLE.fullmatch(scope[5:]))
    ):
        report("encrypt.scope", scope, "user | role:NAME")
    return Encrypt(
        response=response, allow_plaintext=allow_plaintext is True, scope=str(scope), **fields
    )


def _parse_encrypt_request(raw: object, report: Report) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        report("encrypt.request", raw, "a mapping with one of " + ", ".join(_REQUEST_KINDS))
        return {}
    _unknown_keys(raw, _REQUEST_KINDS, "encrypt.request", report)
    kinds = [k for k in _REQUEST_KINDS if k in raw]
    if len(kinds) > 1:
        report("encrypt.request", sorted(raw), "exactly one of form_fields, json_fields, body")
        return {}
    if not kinds:
        return {}
    kind = kinds[0]
    key = f"encrypt.request.{kind}"
    if kind == "body":
        if raw["body"] is not True:
            report(key, raw["body"], "true (omit request to leave the body alone)")
        return {"body": raw["body"] is True}
    items = _string_list(raw[kind], key, report, "field names") or []
    good = []
    for item_key, item in items:
        if kind == "json_fields" and not _JSON_PATH.fullmatch(item):
            report(item_key, item, "a JSON path such as $.note.body or $.items[*].text")
        else:
            good.append(item)
    if len(set(good)) != len(good):
        report(key, raw[kind], "each field listed once")
    return {kind: tuple(good)}


def parse_rate_limit(raw: object, key: str, report: Report) -> RateLimit | None:
    """`60/min`, `10/s`, `100/15m`, `1000/hour` or `{limit: 60/min, by: ip}`."""
    by: object = "user"
    text = raw
    if isinstance(raw, dict):
        _unknown_keys(raw, ("limit", "by"), key, report)
        text, by = raw.get("limit"), raw.get("by", "user")
        key_text = f"{key}.limit"
        if by not in ("user", "ip"):
            report(f"{key}.by", by, "user | ip")
    else:
        key_text = key
    found = _RATE.fullmatch(text) if isinstance(text, str) else None
    if found is None or found[3] not in _UNITS or int(found[1]) < 1 or found[2] == "0":
        report(key_text, text, "COUNT/UNIT such as 60/min, 10/s, 100/15m, 1000/hour (count >= 1)")
        return None
    per = int(found[2] or 1) * _UNITS[found[3]]
    if by not in ("user", "ip"):
        return None
    return RateLimit(count=int(found[1]), per_seconds=per, by=by)  # type: ignore[arg-type]
