"""Table of (request, identity) -> decision, including the bypass attempts operators worry about.

Every raw request-target goes through `canonicalize` first, exactly like the pipeline; a BadPath
is the "400" outcome. The table runs against one policy set, case-sensitive unless the row says
case-insensitive.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.http.canonical import BadPath, canonicalize
from gateway.policy import Principal, decide
from tests.policy.conftest import load, write

POLICY = """
rules:
  - name: dotfiles
    match: {paths: ["/.git/**", "/.git"]}
    access: deny
  - name: static
    match: {paths: ["/static/**", "/favicon.ico"], methods: [GET]}
    access: public
  - name: health
    match: {paths: ["/health"], methods: [GET, HEAD]}
    access: public
  - name: internal
    match: {paths: ["/internal/**"], networks: [10.0.0.0/8, "2001:db8::/32"]}
    access: authenticated
  - name: internal-other
    match: {paths: ["/internal/**"]}
    access: deny
  - name: admin-host
    match: {hosts: [admin.example.com]}
    access: mfa
    roles: [admin]
  - name: tenants
    match: {paths: ["/tenant/**"], hosts: ["*.tenants.example.com"]}
    access: authenticated
  - name: admin
    match: {paths: ["/admin", "/admin/**"]}
    access: mfa
    roles: [admin]
  - name: reports
    match: {paths: ["/reports/*/view"]}
    access: authenticated
    roles: [auditor, admin]
  - name: api-items
    match: {paths: ["re:/api/v[0-9]+/items(/[0-9]+)?"]}
    access: authenticated
  - name: notes
    match: {paths: ["/", "/notes", "/notes/**"], methods: [GET, POST]}
    access: authenticated
"""

WHO = {
    "anon": Principal(),
    "partial": Principal("pat", frozenset(), "partial", mfa_enabled=True),
    "partial-new": Principal("pia", frozenset(), "partial", mfa_enabled=False),
    "alice": Principal("alice", frozenset(), "password", mfa_enabled=False),
    "bob": Principal("bob", frozenset({"admin"}), "password", mfa_enabled=True),
    "carol": Principal("carol", frozenset({"admin"}), "mfa", mfa_enabled=True),
    "erin": Principal("erin", frozenset({"staff"}), "mfa", mfa_enabled=True),
    "audrey": Principal("audrey", frozenset({"auditor"}), "password", mfa_enabled=False),
}

H = "app.example.com"
IP = "203.0.113.9"
CI = "ci"  # marks a row evaluated with case_insensitive_paths: true

# (method, host, raw target, who, client ip, mode, expected outcome, expected rule)
TABLE = [
    # static assets, and the classic ways of walking out of them
    ("GET", H, "/static/app.css", "anon", IP, "", "allow", "static"),
    ("GET", H, "/static/", "anon", IP, "", "allow", "static"),
    ("GET", H, "/static", "anon", IP, "", "forbidden", None),  # /x/** does not match /x
    ("GET", H, "/favicon.ico", "anon", IP, "", "allow", "static"),
    ("GET", H, "/favicon.ico/", "anon", IP, "", "forbidden", None),
    ("GET", H, "/static/../admin", "anon", IP, "", "login", "admin"),
    ("GET", H, "/static/%2e%2e/admin", "anon", IP, "", "login", "admin"),
    ("GET", H, "/static/%2E%2E/%2E%2E/admin/users", "anon", IP, "", "login", "admin"),
    ("GET", H, "/static/.%2e/admin", "bob", IP, "", "mfa", "admin"),
    ("GET", H, "/static/..%2fadmin", "anon", IP, "", "400", None),
    ("GET", H, "/static/..%2Fadmin", "carol", IP, "", "400", None),
    ("GET", H, "/static/%5c../admin", "anon", IP, "", "400", None),
    ("GET", H, "/static\\..\\admin", "anon", IP, "", "400", None),
    ("GET", H, "/static//..//admin", "anon", IP, "", "login", "admin"),
    ("GET", H, "/static/./../admin/", "anon", IP, "", "login", "admin"),
    ("GET", H, "/static;/../admin", "anon", IP, "", "400", None),
    ("GET", H, "/static/%00/x", "anon", IP, "", "400", None),
    ("GET", H, "/static/%ff", "anon", IP, "", "400", None),
    ("GET", H, "/static/x.css?/admin", "anon", IP, "", "allow", "static"),
    ("GET", H, "/admin?/static/x.css", "anon", IP, "", "login", "admin"),
    ("GET", H, "/admin#/static/x.css", "anon", IP, "", "login", "admin"),
    ("HEAD", H, "/static/app.css", "anon", IP, "", "forbidden", None),  # HEAD not implied
    ("OPTIONS", H, "/static/app.css", "anon", IP, "", "forbidden", None),
    ("POST", H, "/static/app.css", "anon", IP, "", "forbidden", None),
    ("HEAD", H, "/health", "anon", IP, "", "allow", "health"),
    ("OPTIONS", H, "/health", "anon", IP, "", "forbidden", None),
    ("GET", H, "/health/", "anon", IP, "", "forbidden", None),
    # admin: login first, then MFA (step-up or enrolment), then the role
    ("GET", H, "/admin", "anon", IP, "", "login", "admin"),
    ("GET", H, "//admin", "anon", IP, "", "login", "admin"),
    ("GET", H, "/%61dmin", "anon", IP, "", "login", "admin"),
    ("GET", H, "/admin%2F", "anon", IP, "", "400", None),
    ("GET", H, "/admin;jsessionid=1", "carol", IP, "", "400", None),
    ("GET", H, "/admin", "alice", IP, "", "mfa_enroll", "admin"),
    ("GET", H, "/admin", "bob", IP, "", "mfa", "admin"),
    ("GET", H, "/admin", "carol", IP, "", "allow", "admin"),
    ("GET", H, "/admin/", "carol", IP, "", "allow", "admin"),
    ("DELETE", H, "/admin/users/7", "carol", IP, "", "allow", "admin"),
    ("GET", H, "/admin/users", "erin", IP, "", "forbidden", "admin"),
    ("GET", H, "/admin", "partial", IP, "", "mfa", "admin"),
    ("GET", H, "/admin", "partial-new", IP, "", "mfa_enroll", "admin"),
    ("GET", H, "/adminx", "carol", IP, "", "forbidden", None),
    ("GET", H, "/admin/../notes", "alice", IP, "", "allow", "notes"),
    # case variants: sensitive by default, casefolded when configured
    ("GET", H, "/Admin", "anon", IP, "", "forbidden", None),
    ("GET", H, "/ADMIN/users", "carol", IP, "", "forbidden", None),
    ("GET", H, "/Admin", "anon", IP, CI, "login", "admin"),
    ("GET", H, "/ADMIN/Users", "carol", IP, CI, "allow", "admin"),
    ("GET", H, "/Static/app.css", "anon", IP, "", "forbidden", None),
    ("GET", H, "/Static/app.css", "anon", IP, CI, "allow", "static"),
    ("GET", H, "/.GIT/config", "carol", IP, CI, "forbidden", "dotfiles"),
    ("GET", H, "/API/V2/Items/3", "alice", IP, CI, "allow", "api-items"),
    # notes: methods are exact, partial sessions open nothing
    ("GET", H, "/", "anon", IP, "", "login", "notes"),
    ("GET", H, "/", "alice", IP, "", "allow", "notes"),
    ("POST", H, "/notes", "alice", IP, "", "allow", "notes"),
    ("GET", H, "/notes/", "alice", IP, "", "allow", "notes"),
    ("GET", H, "/notes/1/edit", "alice", IP, "", "allow", "notes"),
    ("DELETE", H, "/notes/1", "alice", IP, "", "forbidden", None),
    ("HEAD", H, "/notes", "alice", IP, "", "forbidden", None),
    ("GET", H, "/notes", "partial", IP, "", "login", "notes"),
    ("GET", H, "/notes/%2e%2e/%2e%2e/.git/config", "carol", IP, "", "forbidden", "dotfiles"),
    # deny rules win for everyone
    ("GET", H, "/.git/config", "carol", IP, "", "forbidden", "dotfiles"),
    ("GET", H, "/.git", "anon", IP, "", "forbidden", "dotfiles"),
    ("GET", H, "/%2Egit/HEAD", "anon", IP, "", "forbidden", "dotfiles"),
    ("GET", H, "/static/../.git/HEAD", "anon", IP, "", "forbidden", "dotfiles"),
    # networks
    ("GET", H, "/internal/x", "alice", "10.1.2.3", "", "allow", "internal"),
    ("GET", H, "/internal/x", "alice", "192.168.1.1", "", "forbidden", "internal-other"),
    ("GET", H, "/internal/x", "alice", "::ffff:10.0.0.5", "", "allow", "internal"),
    ("GET", H, "/internal/x", "alice", "2001:db8::1", "", "allow", "internal"),
    ("GET", H, "/internal/x", "anon", "10.0.0.1", "", "login", "internal"),
    ("GET", H, "/internal/x", "alice", "not-an-ip", "", "forbidden", "internal-other"),
    # hosts: case, port and trailing dot ignored; no suffix tricks
    ("GET", "admin.example.com", "/", "carol", IP, "", "allow", "admin-host"),
    ("GET", "Admin.Example.COM:8443", "/anything", "alice", IP, "", "mfa_enroll", "admin-host"),
    ("GET", "admin.example.com.", "/x", "anon", IP, "", "login", "admin-host"),
    ("GET", "admin.example.com.:80", "/", "bob", IP, "", "mfa", "admin-host"),
    ("GET", "admin.example.com.evil.net", "/", "anon", IP, "", "login", "notes"),
    ("GET", "evil-admin.example.com", "/", "anon", IP, "", "login", "notes"),
    ("GET", "a.tenants.example.com", "/tenant/1", "alice", IP, "", "allow", "tenants"),
    ("GET", "a.b.TENANTS.example.com:8080", "/tenant/1", "alice", IP, "", "allow", "tenants"),
    ("GET", "tenants.example.com", "/tenant/1", "alice", IP, "", "forbidden", None),
    ("GET", "", "/tenant/1", "alice", IP, "", "forbidden", None),
    ("GET", "a.tenants.example.com.evil", "/tenant/1", "alice", IP, "", "forbidden", None),
    # `*` is one segment; roles are any-of
    ("GET", H, "/reports/2024/view", "audrey", IP, "", "allow", "reports"),
    ("GET", H, "/reports/2024/view", "alice", IP, "", "forbidden", "reports"),
    ("GET", H, "/reports/2024/view", "anon", IP, "", "login", "reports"),
    ("GET", H, "/reports/a/b/view", "audrey", IP, "", "forbidden", None),
    ("GET", H, "/reports//view", "audrey", IP, "", "forbidden", None),
    # `re:` is a full match on the canonical path
    ("GET", H, "/api/v2/items", "alice", IP, "", "allow", "api-items"),
    ("GET", H, "/api/v2/items/42", "anon", IP, "", "login", "api-items"),
    ("GET", H, "/api/v2/items/42/", "alice", IP, "", "forbidden", None),
    ("GET", H, "/api/vx/items", "alice", IP, "", "forbidden", None),
    ("GET", H, "/api/v2/%69tems", "alice", IP, "", "allow", "api-items"),
    ("GET", H, "/api/v2/items/42%2F", "alice", IP, "", "400", None),
]


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder: Path = tmp_path_factory.mktemp("table")
    write(folder / "policies", "10-table.yaml", POLICY)
    return {
        "": load(folder),
        CI: load(folder, case_insensitive_paths=True),
    }


def test_table_is_large_enough() -> None:
    assert len(TABLE) >= 60


@pytest.mark.parametrize(
    ("method", "host", "raw", "who", "ip", "mode", "outcome", "rule_name"),
    TABLE,
    ids=[f"{r[0]} {r[1]}{r[2]} {r[3]} {r[4]} {r[5]}".strip() for r in TABLE],
)
def test_request_gets_the_expected_decision(
    policies, method, host, raw, who, ip, mode, outcome, rule_name
) -> None:
    policy = policies[mode]
    try:
        path = canonicalize(raw).path
    except BadPath:
        assert outcome == "400"
        return
    assert outcome != "400", f"expected BadPath for {raw!r}, got canonical {path!r}"
    rule = policy.match(method, host, path, ip)
    assert (rule.name if rule else None) == rule_name
    decision = decide(policy, rule, WHO[who], mfa_enforce="policy")
    assert decision.outcome == outcome
    assert decision.rule is rule
