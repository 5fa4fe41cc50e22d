"""Unreachable-rule detection: finds rules that an earlier rule shadows entirely.

Owns the proof that a rule can never be the first match. It is deliberately conservative: a rule
is reported only when, for each of its path patterns, one earlier rule provably matches every
request that pattern (with the rule's methods, hosts and networks) could match. Anything it
cannot prove (overlapping regexes, partial overlaps, combinations of several earlier rules) is
left alone. Never changes rules; the loader turns findings into problems.
"""

from __future__ import annotations

from gateway.policy.matcher import RuleIndex, host_matches
from gateway.policy.model import Match, PathPattern, Rule

__all__ = ["find_shadowed"]


def find_shadowed(rules: tuple[Rule, ...], index: RuleIndex) -> list[tuple[Rule, Rule]]:
    """[(unreachable rule, an earlier rule that shadows it)] in rule order."""
    by_source: dict[str, list[tuple[int, PathPattern, Rule]]] = {}
    for rule in rules:
        for pattern in rule.match.paths:
            by_source.setdefault(_key(pattern), []).append((rule.index, pattern, rule))
    found: list[tuple[Rule, Rule]] = []
    for rule in rules:
        patterns: tuple[PathPattern | None, ...] = rule.match.paths or (None,)
        shadows: list[Rule] = []
        for pattern in patterns:
            shadow = _first_cover(rule, pattern, index, by_source)
            if shadow is None:
                break
            shadows.append(shadow)
        else:
            found.append((rule, shadows[0]))
    return found


def _key(pattern: PathPattern) -> str:
    if pattern.literal is not None:
        return "=" + pattern.literal
    assert pattern.regex is not None
    kind = "re" if pattern.source.startswith("re:") else "glob"
    return f"{kind}:{pattern.regex.pattern}"


def _first_cover(
    rule: Rule,
    pattern: PathPattern | None,
    index: RuleIndex,
    by_source: dict[str, list[tuple[int, PathPattern, Rule]]],
) -> Rule | None:
    candidates: list[tuple[int, PathPattern | None, Rule]] = []
    if pattern is None:
        candidates.extend(index.prefix_entries(()))
    elif pattern.literal is not None:
        candidates.extend(index.candidates(pattern.literal))
    else:
        candidates.extend(by_source.get(_key(pattern), ()))
        if not pattern.source.startswith("re:"):
            candidates.extend(index.prefix_entries(pattern.prefix))
        else:
            candidates.extend(index.prefix_entries(()))
    candidates.sort(key=lambda c: c[0])
    for earlier_index, earlier_pattern, earlier in candidates:
        if earlier_index >= rule.index:
            break
        if _path_covers(earlier_pattern, pattern) and _conditions_cover(earlier.match, rule.match):
            return earlier
    return None


def _everything(pattern: PathPattern | None) -> bool:
    return pattern is None or (
        pattern.regex is not None
        and pattern.regex.pattern == "/.*"
        and not pattern.source.startswith("re:")
    )


def _path_covers(a: PathPattern | None, b: PathPattern | None) -> bool:
    """Every canonical path `b` matches, `a` matches too (provably)."""
    if _everything(a):
        return True
    assert a is not None
    if b is None:
        return False
    if _key(a) == _key(b):
        return True
    if b.literal is not None:
        return a.matches(b.literal)
    if b.source.startswith("re:") or a.regex is None or a.source.startswith("re:"):
        return False
    # a is "/head/**" with a literal head: it covers any glob whose literal text starts there.
    head = a.regex.pattern
    if not head.endswith("/.*") or "[^/]" in head:
        return False
    literal_head = head[:-2].replace("\\", "")
    b_text = b.regex.pattern if b.regex is not None else ""
    b_literal = b_text.split("[^/]", 1)[0].split("(?:", 1)[0].replace("\\", "")
    return b_literal.startswith(literal_head)


def _conditions_cover(a: Match, b: Match) -> bool:
    """Every (method, host, client ip) that passes `b` passes `a`."""
    if a.methods and not (b.methods and b.methods <= a.methods):
        return False
    if a.hosts and not (b.hosts and all(host_matches(a.hosts, h) for h in b.hosts)):
        return False
    if a.networks:
        if not b.networks:
            return False
        for net in b.networks:
            if not any(
                net.version == outer.version and net.subnet_of(outer)  # type: ignore[arg-type]
                for outer in a.networks
            ):
                return False
    return True
