"""Glob and host semantics, and the index giving the same first match as a plain linear scan."""

from __future__ import annotations

import random

import pytest

from gateway.policy import Match, Rule, build_policy_set
from gateway.policy.matcher import compile_path, normalize_host


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("/x/**", "/x/", True),
        ("/x/**", "/x/a/b/c", True),
        ("/x/**", "/x", False),
        ("/x/**", "/xy/a", False),
        ("/**", "/", True),
        ("/**", "/anything/at/all", True),
        ("/x/*", "/x/a", True),
        ("/x/*", "/x/", True),
        ("/x/*", "/x/a/b", False),
        ("/x/*.css", "/x/site.css", True),
        ("/x/*.css", "/x/a/site.css", False),
        ("/a/**/z", "/a/z", True),
        ("/a/**/z", "/a/b/c/z", True),
        ("/a/**/z", "/a/b/c/zz", False),
        ("/**/.env", "/.env", True),
        ("/**/.env", "/deep/down/.env", True),
        ("/v*/users", "/v2/users", True),
        ("/v*/users", "/v2/x/users", False),
        ("/a.b", "/aXb", False),  # regex characters in globs are literal
        ("/a+b/(c)", "/a+b/(c)", True),
        ("re:/api/v[0-9]+", "/api/v12", True),
        ("re:/api/v[0-9]+", "/api/v12/x", False),  # full match
        ("re:^/api/.*$", "/api/x", True),
        ("re:/a|/b", "/b", True),
    ],
)
def test_glob_semantics(glob: str, path: str, matches: bool) -> None:
    assert compile_path(glob, case_insensitive=False).matches(path) is matches


@pytest.mark.parametrize(
    ("regex", "prefix"),
    [
        ("re:/api/v[0-9]+/x", ("api",)),
        ("re:/api/?", ()),
        ("re:/api/x?/y", ("api",)),
        ("re:^/a/b/c.*", ("a", "b")),
        ("re:/a/b|/c/d", ()),
        ("re:.*/admin", ()),
    ],
)
def test_regex_index_prefix_is_only_what_every_match_must_start_with(regex, prefix) -> None:
    assert compile_path(regex, case_insensitive=False).prefix == prefix


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("example.com.:8080", "example.com"),
        ("[::1]:8443", "::1"),
        ("10.0.0.1:80", "10.0.0.1"),
        ("", ""),
    ],
)
def test_request_host_normalization(raw: str, normalized: str) -> None:
    assert normalize_host(raw) == normalized


def _random_rules(rng: random.Random, count: int) -> list[Rule]:
    words = ["a", "b", "c", "api", "x"]
    rules = []
    for i in range(count):
        depth = rng.randint(1, 3)
        segs = [rng.choice(words) for _ in range(depth)]
        kind = rng.random()
        if kind < 0.3:
            source = "/" + "/".join(segs) + "/**"
        elif kind < 0.5:
            source = "/" + "/".join(segs[:-1] + ["*"])
        elif kind < 0.6:
            source = "/**/" + segs[-1]
        elif kind < 0.7:
            source = "re:/" + "/".join(segs[:-1]) + "/[a-c]+"
        else:
            source = "/" + "/".join(segs)
        methods = frozenset(rng.sample(["GET", "POST", "HEAD"], rng.randint(0, 2)))
        hosts = frozenset(rng.choice([(), ("h.example.com",), ("*.example.com",)]))
        match = Match(
            paths=(compile_path(source.replace("//", "/"), case_insensitive=False),),
            methods=methods,
            hosts=hosts,
        )
        rules.append(Rule(f"r{i}", "f.yaml", i, match, "public"))
    return rules


def test_index_finds_the_same_first_match_as_a_linear_scan() -> None:
    from gateway.policy.matcher import host_matches

    rng = random.Random(5)
    rules = _random_rules(rng, 300)
    policy = build_policy_set(rules, default_access="deny", case_insensitive_paths=False)
    words = ["a", "b", "c", "api", "x", "zz", "ab"]
    hits = 0
    for _ in range(3000):
        path = "/" + "/".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
        path += rng.choice(["", "/"])
        method = rng.choice(["GET", "POST", "HEAD", "PUT"])
        host = rng.choice(["h.example.com", "x.example.com", "other.org"])
        expected = next(
            (
                r
                for r in rules
                if r.match.paths[0].matches(path)
                and (not r.match.methods or method in r.match.methods)
                and (not r.match.hosts or host_matches(r.match.hosts, host))
            ),
            None,
        )
        assert policy.match(method, host, path, "127.0.0.1") is expected, (method, host, path)
        hits += expected is not None
    assert hits > 1000  # the random set really exercises matches, not only misses
