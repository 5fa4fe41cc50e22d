"""`gateway explain`: what ops read before deploying a policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy import Principal, explain
from tests.policy.conftest import load, write


@pytest.fixture
def policy(tmp_path: Path):
    write(tmp_path / "policies", "10-app.yaml", """
        rules:
          - {name: admin-host, match: {hosts: [admin.example.com]}, access: deny}
          - name: admin
            match: {paths: ["/admin/**"]}
            access: mfa
            roles: [admin]
          - name: notes
            match: {paths: ["/notes/**"]}
            access: authenticated
            encrypt: {request: {form_fields: [body]}, response: tokens}
            rate_limit: 60/min
        """)  # fmt: skip
    return load(tmp_path)


def test_explain_shows_canonical_path_rule_and_decision(policy) -> None:
    out = explain(policy, "GET", "/static/../admin/users?x=/notes", principal=Principal(),
                  mfa_enforce="policy")  # fmt: skip
    assert "canonical: /admin/users  query: x=/notes" in out
    assert "rule:      admin (10-app.yaml, access=mfa)" in out
    assert "decision:  login (reason=authentication_required)" in out


def test_explain_uses_the_host_of_a_full_url(policy) -> None:
    mfa_admin = Principal("root", frozenset({"admin"}), "mfa", mfa_enabled=True)
    out = explain(policy, "GET", "http://Admin.Example.com:8080/admin/x", principal=mfa_admin,
                  mfa_enforce="policy")  # fmt: skip
    assert "rule:      admin-host" in out
    assert "decision:  forbidden (reason=deny_rule)" in out
    out = explain(policy, "GET", "/admin/x", principal=mfa_admin, mfa_enforce="policy")
    assert "decision:  allow (reason=mfa)" in out


def test_explain_reports_a_400_and_the_default(policy) -> None:
    out = explain(policy, "GET", "/notes/..%2F..%2Fadmin", principal=Principal(),
                  mfa_enforce="policy")  # fmt: skip
    assert "decision:  400 bad request (reason=encoded_separator)" in out
    out = explain(policy, "GET", "/elsewhere", principal=Principal(), mfa_enforce="policy")
    assert "rule:      no rule: default_access=deny" in out
    assert "decision:  forbidden (reason=default_deny)" in out


def test_explain_shows_rate_limit_and_encryption_of_an_allowed_request(policy) -> None:
    user = Principal("alice", frozenset(), "password")
    out = explain(policy, "POST", "/notes/1", principal=user, mfa_enforce="policy")
    assert "decision:  allow (reason=authenticated)" in out
    assert "limit:     60 per 60s by user" in out
    assert "encrypt:   request=form_fields response=tokens scope=user" in out
