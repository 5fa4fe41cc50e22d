"""Rule matching: compiles path globs, hosts and networks once, and finds the first matching rule.

Owns the match semantics of DESIGN.md section 11: `*` is one segment (or part of one), `**` zero
or more whole segments, `/x/**` matches `/x/` and below but not `/x`, `re:` is a full-match regex;
paths are compared case-sensitively unless the set is case-insensitive (then both sides are
casefolded); hosts are compared case-insensitively with port and trailing dot ignored; methods are
compared exactly (HEAD is NOT implied by GET).

Cost per lookup: rules are indexed in a trie keyed by the literal leading segments of their path
patterns (and a dict for fully literal paths), so a request only tests the rules whose prefix
lies on its path; first-match order is kept by sorting candidates on rule index.
Never canonicalizes the request path (the caller passes the canonical path), never reads files.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from operator import itemgetter

from gateway.http.canonical import BadPath, canonicalize
from gateway.policy.model import (
    AccessLevel,
    IPNetwork,
    PathPattern,
    PolicySet,
    Rule,
)

__all__ = [
    "RuleIndex",
    "build_policy_set",
    "compile_host",
    "compile_path",
    "host_matches",
    "normalize_host",
]

_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# Characters that end the literal head of a regex, and quantifiers that reach back one char.
_REGEX_LITERAL = re.compile(r"[A-Za-z0-9_\-/~]*")
_QUANTIFIERS = frozenset("?*+{")


def compile_path(source: str, *, case_insensitive: bool) -> PathPattern:
    """Compile one `match.paths` entry; raise ValueError saying what was expected."""
    if not isinstance(source, str) or not source:
        raise ValueError("a path glob starting with '/' or a 're:' regex")
    if source.startswith("re:"):
        return _compile_regex(source, case_insensitive)
    return _compile_glob(source, case_insensitive)


def _compile_regex(source: str, case_insensitive: bool) -> PathPattern:
    body = source[3:]
    if not body:
        raise ValueError("a non-empty regex after 're:'")
    try:
        regex = re.compile(body, re.IGNORECASE if case_insensitive else 0)
    except re.error as exc:
        raise ValueError(f"a valid regex ({exc})") from None
    return PathPattern(source, None, regex, _regex_prefix(body, case_insensitive))


def _regex_prefix(body: str, case_insensitive: bool) -> tuple[str, ...]:
    """Literal leading segments a regex provably requires; () when unsure."""
    if "|" in body:
        return ()  # a top-level alternation could start anywhere
    if body.startswith("^"):
        body = body[1:]
    head = _REGEX_LITERAL.match(body)
    text = head.group(0) if head else ""
    if len(text) < len(body) and body[len(text)] in _QUANTIFIERS:
        text = text[:-1]  # `a?` makes the last literal character optional
    if not text.startswith("/"):
        return ()
    complete = text[: text.rfind("/")]
    segments = tuple(s for s in complete.split("/")[1:])
    if any(not s for s in segments):
        return ()
    return tuple(s.casefold() for s in segments) if case_insensitive else segments


def _compile_glob(source: str, case_insensitive: bool) -> PathPattern:
    if not source.startswith("/"):
        raise ValueError("a path glob starting with '/' or a 're:' regex")
    for char, why in (
        ("?", "the query string never takes part in path matching"),
        ("#", "fragments never reach the gateway"),
    ):
        if char in source:
            raise ValueError(f"no '{char}' in a path glob ({why})")
    segments = source[1:].split("/")
    for seg in segments:
        if "**" in seg and seg != "**":
            raise ValueError("'**' only as a whole segment, e.g. '/static/**'")
    _require_canonical(source)
    if case_insensitive:
        source_key = source.casefold()
        segments = source_key[1:].split("/")
    else:
        source_key = source
    if "*" not in source_key:
        return PathPattern(source, source_key, None, ())
    prefix: list[str] = []
    for seg in segments:
        if "*" in seg:
            break
        prefix.append(seg)
    return PathPattern(source, None, re.compile(_glob_regex(segments)), tuple(prefix))


def _require_canonical(source: str) -> None:
    """A glob that is not in canonical form could never match a canonical path: refuse it."""
    probe = source.replace("*", "x")
    try:
        canonical = canonicalize(probe).path
    except BadPath as exc:
        raise ValueError(f"a canonical path glob (this one is refused: {exc.reason})") from None
    if canonical != probe:
        raise ValueError(
            f"a canonical path glob (requests are matched after canonicalization, "
            f"which turns this into {canonical!r})"
        )


def _glob_regex(segments: list[str]) -> str:
    out: list[str] = []
    for i, seg in enumerate(segments):
        if seg == "**":
            # Last: "/x/**" is "/x/" then anything. Inside: zero or more whole segments.
            out.append("/.*" if i == len(segments) - 1 else "(?:/[^/]+)*")
        else:
            out.append("/" + "[^/]*".join(re.escape(part) for part in seg.split("*")))
    return "".join(out)


def normalize_host(host: str) -> str:
    """`Example.COM.:8080` -> `example.com`; `[::1]:80` -> `::1`."""
    host = host.strip()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end].lower() if end > 0 else host.lower()
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".").lower()


def compile_host(host: str) -> str:
    """Validate one `match.hosts` entry and return its normalized form; raise ValueError."""
    expected = "a host name such as 'app.example.com' or '*.example.com' (no port, no scheme)"
    if not isinstance(host, str) or not host:
        raise ValueError(expected)
    name = host.rstrip(".").lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    labels = name.split(".")
    if labels[0] == "*":
        labels = labels[1:]
        if len(labels) < 2:
            raise ValueError(expected + "; a wildcard needs at least two labels after '*.'")
    if len(name) > 253 or not labels or not all(_HOST_LABEL.fullmatch(lb) for lb in labels):
        raise ValueError(expected)
    return name


def host_matches(patterns: Iterable[str], host: str) -> bool:
    """`host` is already normalized. `*.example.com` matches any subdomain depth, not the apex."""
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def _client_address(client_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


# A candidate: (rule index, pattern or None for "any path", rule).
_Candidate = tuple[int, PathPattern | None, Rule]
_by_index = itemgetter(0)


class _Node:
    __slots__ = ("children", "entries")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.entries: list[_Candidate] = []


class RuleIndex:
    """First-match lookup over rules, built once per PolicySet."""

    def __init__(self, rules: Iterable[Rule], *, case_insensitive: bool) -> None:
        self._case_insensitive = case_insensitive
        self._exact: dict[str, list[_Candidate]] = {}
        self._root = _Node()
        for rule in rules:
            if not rule.match.paths:
                self._root.entries.append((rule.index, None, rule))
            for pattern in rule.match.paths:
                if pattern.literal is not None:
                    self._exact.setdefault(pattern.literal, []).append((rule.index, pattern, rule))
                    continue
                node = self._root
                for seg in pattern.prefix:
                    node = node.children.setdefault(seg, _Node())
                node.entries.append((rule.index, pattern, rule))

    def prefix_entries(self, segments: Iterable[str]) -> list[_Candidate]:
        """Entries whose literal prefix lies on `segments` (not the fully literal ones)."""
        found = list(self._root.entries)
        node = self._root
        for seg in segments:
            node = node.children.get(seg)  # type: ignore[assignment]
            if node is None:
                break
            found.extend(node.entries)
        return found

    def candidates(self, path: str) -> list[_Candidate]:
        """Rules that could match `path` (already casefolded if needed), in precedence order."""
        found = self.prefix_entries(path[1:].split("/"))
        exact = self._exact.get(path)
        if exact:
            found.extend(exact)
        found.sort(key=_by_index)
        return found

    def match(self, method: str, host: str, path: str, client_ip: str) -> Rule | None:
        key = path.casefold() if self._case_insensitive else path
        norm_host: str | None = None
        address: object = _UNSET
        for _, pattern, rule in self.candidates(key):
            if pattern is not None and not pattern.matches(key):
                continue
            cond = rule.match
            if cond.methods and method not in cond.methods:
                continue
            if cond.hosts:
                if norm_host is None:
                    norm_host = normalize_host(host)
                if not host_matches(cond.hosts, norm_host):
                    continue
            if cond.networks:
                if address is _UNSET:
                    address = _client_address(client_ip)
                if address is None or not _in_networks(address, cond.networks):
                    continue
            return rule
        return None


_UNSET = object()


def _in_networks(address: object, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in net for net in networks)


def build_policy_set(
    rules: Iterable[Rule],
    *,
    default_access: AccessLevel,
    case_insensitive_paths: bool,
    sources: Iterable[tuple[str, int]] = (),
) -> PolicySet:
    """Freeze `rules` (already in precedence order) with their compiled index."""
    frozen = tuple(rules)
    return PolicySet(
        rules=frozen,
        default_access=default_access,
        case_insensitive_paths=case_insensitive_paths,
        sources=tuple(sources),
        index=RuleIndex(frozen, case_insensitive=case_insensitive_paths),
    )
