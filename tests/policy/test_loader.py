"""Loading policy files: order, and every mistake reported with file, rule and key, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy import PolicyError, load_policies
from tests.policy.conftest import load

GOOD = """
rules:
  - {name: a, match: {paths: ["/a"]}, access: public}
"""


def problems_of(folder: Path, **kw) -> list:
    with pytest.raises(PolicyError) as info:
        load(folder, **kw)
    return info.value.problems


def only(problems: list, key: str):
    found = [p for p in problems if p.key == key]
    assert len(found) == 1, [str(p) for p in problems]
    return found[0]


def test_rule_shadowed_by_a_rule_of_an_earlier_file_is_reported(tmp_path, policy_dir) -> None:
    policy_dir("20-b.yaml", "rules: [{name: b1, match: {paths: ['/x']}, access: deny}]")
    policy_dir("10-a.yaml", GOOD + "  - {name: a2, match: {paths: ['/x']}, access: public}\n")
    problem = only(problems_of(tmp_path), "rules[0].match")
    assert (Path(problem.file).name, problem.rule) == ("20-b.yaml", "b1")
    assert "10-a.yaml:a2" in problem.expected


def test_rule_order_follows_file_names_across_files(tmp_path, policy_dir) -> None:
    policy_dir("20-b.yaml", "rules: [{name: b1, match: {paths: ['/x']}, access: deny}]")
    policy_dir("10-a.yaml", "rules: [{name: a1, match: {paths: ['/y']}, access: public}]")
    policy = load(tmp_path)
    assert [(r.name, Path(r.file).name, r.index) for r in policy.rules] == [
        ("a1", "10-a.yaml", 0),
        ("b1", "20-b.yaml", 1),
    ]
    assert policy.match("GET", "h", "/x", "127.0.0.1").name == "b1"


def test_empty_file_is_an_error_but_an_empty_rule_list_is_not(tmp_path, policy_dir) -> None:
    policy_dir("00-empty.yaml", "# nothing yet\n")
    policy_dir("10-a.yaml", GOOD)
    (problem,) = problems_of(tmp_path)
    assert Path(problem.file).name == "00-empty.yaml"
    assert "rules: []" in problem.expected
    policy_dir("00-empty.yaml", "# nothing yet\nrules: []\n")
    assert [r.name for r in load(tmp_path).rules] == ["a"]


def test_pattern_matching_no_file_is_an_error_naming_the_pattern(tmp_path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policies(
            ["policies/*.yaml"],
            base_dir=tmp_path,
            default_access="deny",
            case_insensitive_paths=False,
        )
    assert [p.file for p in info.value.problems] == ["policies/*.yaml"]
    assert "policies/*.yaml" in str(info.value)


@pytest.mark.parametrize(
    ("rule", "key", "value"),
    [
        ("{name: r, match: {paths: ['/a']}, access: public, color: red}", "color", "color"),
        ("{name: r, match: {paths: ['/a'], verbs: [GET]}, access: public}", "match.verbs", "verbs"),
        ("{name: r, match: {paths: '/a'}, access: public}", "match.paths", "/a"),
        ("{name: r, match: {paths: ['/a']}, access: open}", "access", "open"),
        ("{name: r, match: {paths: ['/a']}}", "access", None),
        ("{name: r, access: public}", "match", None),
        ("{name: 'bad name', match: {paths: ['/a']}, access: public}", "name", "bad name"),
        (
            "{name: r, match: {paths: ['/a'], methods: [get]}, access: public}",
            "match.methods[0]",
            "get",
        ),
        (
            "{name: r, match: {paths: ['/a'], methods: [GET, 7]}, access: public}",
            "match.methods[1]",
            7,
        ),
        (
            "{name: r, match: {networks: [10.0.0.1/8]}, access: deny}",
            "match.networks[0]",
            "10.0.0.1/8",
        ),
        (
            "{name: r, match: {networks: [10.0.0.0/33]}, access: deny}",
            "match.networks[0]",
            "10.0.0.0/33",
        ),
        (
            "{name: r, match: {hosts: ['app.example.com:8080']}, access: deny}",
            "match.hosts[0]",
            "app.example.com:8080",
        ),
        (
            "{name: r, match: {hosts: ['bad_host.example.com']}, access: deny}",
            "match.hosts[0]",
            "bad_host.example.com",
        ),
        ("{name: r, match: {hosts: ['*.com']}, access: deny}", "match.hosts[0]", "*.com"),
        ("{name: r, match: {paths: ['static/**']}, access: public}", "match.paths[0]", "static/**"),
        ("{name: r, match: {paths: ['/a**']}, access: public}", "match.paths[0]", "/a**"),
        ("{name: r, match: {paths: ['/a?b=1']}, access: public}", "match.paths[0]", "/a?b=1"),
        ("{name: r, match: {paths: ['/a/../b']}, access: public}", "match.paths[0]", "/a/../b"),
        ("{name: r, match: {paths: ['/a//b']}, access: public}", "match.paths[0]", "/a//b"),
        ("{name: r, match: {paths: ['/%7euser']}, access: public}", "match.paths[0]", "/%7euser"),
        ("{name: r, match: {paths: ['/a;x']}, access: public}", "match.paths[0]", "/a;x"),
        ("{name: r, match: {paths: ['re:/a(']}, access: public}", "match.paths[0]", "re:/a("),
        ("{name: r, match: {paths: []}, access: public}", "match.paths", []),
        ("{name: r, match: {paths: ['/a']}, access: public, roles: [admin]}", "roles", ["admin"]),
        (
            "{name: r, match: {paths: ['/a']}, access: authenticated, roles: admin}",
            "roles",
            "admin",
        ),
        (
            "{name: r, match: {paths: ['/a']}, access: authenticated, "
            "encrypt: {request: {form_fields: [a], json_fields: [$.a]}}}",
            "encrypt.request",
            ["form_fields", "json_fields"],
        ),
        (
            "{name: r, match: {paths: ['/a']}, access: authenticated, "
            "encrypt: {request: {json_fields: [a.b]}}}",
            "encrypt.request.json_fields[0]",
            "a.b",
        ),
        (
            "{name: r, match: {paths: ['/a']}, access: authenticated, "
            "encrypt: {request: {body: false}}}",
            "encrypt.request.body",
            False,
        ),
        (
            "{name: r, match: {paths: ['/a']}, access: authenticated, encrypt: {response: html}}",
            "encrypt.response",
            "html",
        ),
        (
            "{name: r, match: {paths: ['/a']}, access: authenticated, "
            "encrypt: {response: tokens, scope: group:x}}",
            "encrypt.scope",
            "group:x",
        ),
        (
            "{name: r, match: {paths: ['/a']}, access: public, encrypt: {response: tokens}}",
            "encrypt",
            {"response": "tokens"},
        ),
        (
            "{name: r, match: {paths: ['/a']}, access: public, rate_limit: 60/fortnight}",
            "rate_limit",
            "60/fortnight",
        ),
        (
            "{name: r, match: {paths: ['/a']}, access: public, rate_limit: 0/min}",
            "rate_limit",
            "0/min",
        ),
        (
            "{name: r, match: {paths: ['/a']}, access: public, rate_limit: {limit: 5/s, by: host}}",
            "rate_limit.by",
            "host",
        ),
    ],
)
def test_each_mistake_is_reported_with_file_rule_and_key(
    tmp_path, policy_dir, rule, key, value
) -> None:
    policy_dir("10-r.yaml", f"rules:\n  - {rule}\n")
    problem = only(problems_of(tmp_path), f"rules[0].{key}")
    assert problem.file.endswith("10-r.yaml")
    assert problem.rule == (value if key == "name" else "r")
    assert problem.value == value
    assert problem.expected
    assert f"10-r.yaml: rule {problem.rule}: rules[0].{key}: got" in str(problem)


def test_all_problems_of_all_files_are_reported_at_once(tmp_path, policy_dir) -> None:
    policy_dir(
        "10-a.yaml",
        """
        rules:
          - name: one
            match: {paths: ["/a**"], methods: [get]}
            access: sometimes
          - name: two
            match: {paths: ["re:("], networks: [300.0.0.0/8]}
            access: public
            extra: 1
        """,
    )
    policy_dir("20-b.yaml", "rules:\n  - {name: three, match: {hosts: ['a b']}, access: deny}\n")
    problems = problems_of(tmp_path)
    assert [(Path(p.file).name, p.rule, p.key) for p in problems] == [
        ("10-a.yaml", "one", "rules[0].access"),
        ("10-a.yaml", "one", "rules[0].match.paths[0]"),
        ("10-a.yaml", "one", "rules[0].match.methods[0]"),
        ("10-a.yaml", "two", "rules[1].extra"),
        ("10-a.yaml", "two", "rules[1].match.paths[0]"),
        ("10-a.yaml", "two", "rules[1].match.networks[0]"),
        ("20-b.yaml", "three", "rules[0].match.hosts[0]"),
    ]
    text = str(PolicyError(problems))
    assert text.startswith("7 policy problems:")
    assert len(text.splitlines()) == 8


def test_duplicate_rule_names_across_files_name_both_files(tmp_path, policy_dir) -> None:
    policy_dir("10-a.yaml", GOOD)
    policy_dir("20-b.yaml", "rules:\n  - {name: x, match: {paths: ['/x']}, access: deny}\n"
               "  - {name: a, match: {paths: ['/b']}, access: deny}\n")  # fmt: skip
    problem = only(problems_of(tmp_path), "rules[1].name")
    assert (Path(problem.file).name, problem.rule) == ("20-b.yaml", "a")
    assert "10-a.yaml" in problem.expected


def test_duplicate_yaml_key_is_refused_not_silently_overridden(tmp_path, policy_dir) -> None:
    policy_dir("10-a.yaml", """
        rules:
          - name: admin
            match: {paths: ["/admin/**"]}
            access: mfa
            access: public
        """)  # fmt: skip
    (problem,) = problems_of(tmp_path)
    assert problem.key.startswith("line ")
    assert "duplicate key" in str(problem.value)


def test_file_that_is_not_a_mapping_and_unknown_top_level_key(tmp_path, policy_dir) -> None:
    policy_dir("10-a.yaml", "- just a list\n")
    policy_dir("20-b.yaml", GOOD + "defaults: {}\n")
    problems = problems_of(tmp_path)
    assert [(Path(p.file).name, p.key) for p in problems] == [
        ("10-a.yaml", ""),
        ("20-b.yaml", "defaults"),
    ]


def test_bad_default_access_is_reported(tmp_path, policy_dir) -> None:
    policy_dir("10-a.yaml", GOOD)
    (problem,) = problems_of(tmp_path, default_access="allow")
    assert (problem.key, problem.value) == ("default_access", "allow")


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        (
            "{name: all, match: {paths: ['/**']}, access: deny}",
            "{name: late, match: {paths: ['/notes'], methods: [GET]}, access: public}",
        ),
        (
            "{name: all, match: {}, access: deny}",
            "{name: late, match: {paths: ['re:/x.*']}, access: public}",
        ),
        (
            "{name: same, match: {paths: ['/a/*'], methods: [GET, POST]}, access: public}",
            "{name: late, match: {paths: ['/a/*'], methods: [GET]}, access: deny}",
        ),
        (
            "{name: notes, match: {paths: ['/notes/**']}, access: authenticated}",
            "{name: late, match: {paths: ['/notes/*/edit', '/notes/x']}, access: public}",
        ),
        (
            "{name: nets, match: {paths: ['/i/**'], networks: [10.0.0.0/8]}, access: public}",
            "{name: late, match: {paths: ['/i/x'], networks: [10.1.0.0/16]}, access: deny}",
        ),
        (
            "{name: wild, match: {hosts: ['*.example.com']}, access: deny}",
            "{name: late, match: {paths: ['/'], hosts: [a.example.com]}, access: public}",
        ),
        (
            "{name: rx, match: {paths: ['re:/api/v[0-9]+']}, access: deny}",
            "{name: late, match: {paths: ['/api/v2']}, access: public}",
        ),
    ],
)
def test_rule_shadowed_entirely_by_an_earlier_rule_is_reported(
    tmp_path, policy_dir, earlier, later
) -> None:
    policy_dir("10-a.yaml", f"rules:\n  - {earlier}\n  - {later}\n")
    problem = only(problems_of(tmp_path), "rules[1].match")
    assert (problem.rule, Path(problem.file).name) == ("late", "10-a.yaml")
    assert "10-a.yaml:" in problem.expected


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        (
            "{name: e, match: {paths: ['/**'], methods: [GET]}, access: deny}",
            "{name: l, match: {paths: ['/notes']}, access: public}",
        ),
        (
            "{name: e, match: {paths: ['/notes/**']}, access: deny}",
            "{name: l, match: {paths: ['/notes', '/notes/x']}, access: public}",
        ),
        (
            "{name: e, match: {paths: ['/x/**'], hosts: [a.example.com]}, access: deny}",
            "{name: l, match: {paths: ['/x/y']}, access: public}",
        ),
        (
            "{name: e, match: {paths: ['re:/a.*']}, access: deny}",
            "{name: l, match: {paths: ['re:/ab.*']}, access: public}",
        ),
        (
            "{name: e, match: {paths: ['/a/*']}, access: deny}",
            "{name: l, match: {paths: ['/a/**']}, access: public}",
        ),
        (
            "{name: e, match: {paths: ['/i/**'], networks: [10.1.0.0/16]}, access: deny}",
            "{name: l, match: {paths: ['/i/x'], networks: [10.0.0.0/8]}, access: public}",
        ),
    ],
)
def test_partly_overlapping_rules_are_not_reported(tmp_path, policy_dir, earlier, later) -> None:
    policy_dir("10-a.yaml", f"rules:\n  - {earlier}\n  - {later}\n")
    assert [r.name for r in load(tmp_path).rules] == ["e", "l"]


def test_rule_values_are_compiled_into_the_model(tmp_path, policy_dir) -> None:
    policy_dir("10-a.yaml", """
        rules:
          - name: api
            match:
              paths: ["/api/**"]
              methods: [GET, POST]
              hosts: [API.Example.com.]
              networks: [192.0.2.0/24]
            access: mfa
            roles: [dev, ops]
            encrypt:
              request: {json_fields: ["$.a.b", "$.items[*].text"]}
              response: tokens
              allow_plaintext: true
              scope: role:ops
            rate_limit: {limit: 100/15m, by: ip}
          - name: slow
            match: {paths: ["/slow"]}
            access: authenticated
            encrypt: {request: {body: true}, response: body}
            rate_limit: 10/s
        """)  # fmt: skip
    api, slow = load(tmp_path).rules
    assert api.match.methods == {"GET", "POST"}
    assert api.match.hosts == {"api.example.com"}
    assert [str(n) for n in api.match.networks] == ["192.0.2.0/24"]
    assert api.roles == {"dev", "ops"}
    assert api.encrypt.request_kind == "json_fields"
    assert api.encrypt.json_fields == ("$.a.b", "$.items[*].text")
    assert (api.encrypt.response, api.encrypt.allow_plaintext, api.encrypt.scope) == (
        "tokens", True, "role:ops")  # fmt: skip
    assert (api.rate_limit.count, api.rate_limit.per_seconds, api.rate_limit.by) == (100, 900, "ip")
    assert (slow.encrypt.request_kind, slow.encrypt.response) == ("body", "body")
    assert (slow.rate_limit.count, slow.rate_limit.per_seconds, slow.rate_limit.by) == (
        10, 1, "user")  # fmt: skip


def test_demo_policy_shipped_in_the_repository_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    policy = load_policies(
        ["policies/*.yaml"], base_dir=root, default_access="deny", case_insensitive_paths=False
    )
    assert {"static", "notes", "api", "admin"} <= {r.name for r in policy.rules}


def test_shadowed_rule_is_reported_together_with_other_mistakes(tmp_path, policy_dir) -> None:
    policy_dir(
        "10-a.yaml",
        """
        rules:
          - {name: all, match: {paths: ["/**"]}, access: deny}
          - {name: late, match: {paths: ["/x"]}, access: public}
          - {name: broken, match: {paths: ["/y"]}, access: maybe}
        """,
    )
    assert [(p.rule, p.key) for p in problems_of(tmp_path)] == [
        ("broken", "rules[2].access"),
        ("late", "rules[1].match"),
    ]
