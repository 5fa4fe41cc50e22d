"""Decisions beyond the table: `mfa.enforce: all`, every `default_access`, reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy import Principal, decide
from tests.policy.conftest import load, write

ANON = Principal()
PARTIAL = Principal("u", frozenset(), "partial", mfa_enabled=True)
PASSWORD = Principal("u", frozenset({"staff"}), "password", mfa_enabled=True)
PASSWORD_NEW = Principal("u", frozenset({"staff"}), "password", mfa_enabled=False)
MFA = Principal("u", frozenset({"staff"}), "mfa", mfa_enabled=True)


@pytest.fixture
def policy(tmp_path: Path):
    write(
        tmp_path / "policies",
        "a.yaml",
        """
        rules:
          - {name: open, match: {paths: ["/open"]}, access: public}
          - {name: app, match: {paths: ["/app"]}, access: authenticated}
          - {name: staff, match: {paths: ["/staff"]}, access: authenticated, roles: [staff]}
          - {name: boss, match: {paths: ["/boss"]}, access: authenticated, roles: [boss]}
        """,
    )
    return lambda default="deny": load(tmp_path, default_access=default)


@pytest.mark.parametrize(
    ("who", "outcome", "reason"),
    [
        (ANON, "login", "authentication_required"),
        (PARTIAL, "mfa", "mfa_required"),
        (PASSWORD, "mfa", "mfa_required"),
        (PASSWORD_NEW, "mfa_enroll", "mfa_enrollment_required"),
        (MFA, "allow", "mfa"),
    ],
)
def test_enforce_all_demands_mfa_on_every_protected_rule(policy, who, outcome, reason) -> None:
    p = policy()
    d = decide(p, p.rule_named("app"), who, mfa_enforce="all")
    assert (d.outcome, d.reason) == (outcome, reason)


@pytest.mark.parametrize("who", [ANON, PARTIAL, PASSWORD_NEW, MFA])
@pytest.mark.parametrize("enforce", ["policy", "all"])
def test_public_rule_allows_everyone(policy, who, enforce) -> None:
    p = policy()
    d = decide(p, p.rule_named("open"), who, mfa_enforce=enforce)
    assert (d.outcome, d.reason) == ("allow", "public")


def test_enforce_policy_accepts_a_password_session_on_authenticated_rules(policy) -> None:
    p = policy()
    assert decide(p, p.rule_named("app"), PASSWORD, mfa_enforce="policy").outcome == "allow"


def test_role_is_checked_after_mfa_under_enforce_all(policy) -> None:
    p = policy()
    boss = p.rule_named("boss")
    assert decide(p, boss, PASSWORD, mfa_enforce="all").outcome == "mfa"
    d = decide(p, boss, MFA, mfa_enforce="all")
    assert (d.outcome, d.reason) == ("forbidden", "role_missing")
    assert decide(p, p.rule_named("staff"), MFA, mfa_enforce="all").outcome == "allow"


@pytest.mark.parametrize(
    ("default", "who", "outcome", "reason"),
    [
        ("deny", MFA, "forbidden", "default_deny"),
        ("public", ANON, "allow", "default_public"),
        ("authenticated", ANON, "login", "authentication_required"),
        ("authenticated", PASSWORD, "allow", "default_authenticated"),
        ("mfa", PASSWORD, "mfa", "mfa_required"),
        ("mfa", MFA, "allow", "default_mfa"),
    ],
)
def test_unmatched_request_gets_default_access_as_an_access_level(
    policy, default, who, outcome, reason
) -> None:
    p = policy(default)
    assert p.match("GET", "h", "/elsewhere", "127.0.0.1") is None
    d = decide(p, None, who, mfa_enforce="policy")
    assert (d.outcome, d.reason, d.rule) == (outcome, reason, None)


def test_principal_without_user_is_anonymous_whatever_its_level(policy) -> None:
    p = policy()
    ghost = Principal(None, frozenset({"staff"}), "mfa", mfa_enabled=True)
    assert decide(p, p.rule_named("staff"), ghost, mfa_enforce="policy").outcome == "login"
