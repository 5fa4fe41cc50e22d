"""The decision step: given the matched rule and who is asking, allow or say what is missing.

Owns the mapping of (access level, roles, authentication level, MFA enrolment) to one outcome of
DESIGN.md sections 2, 5 and 11. Pure and synchronous: never looks at the request, the session
store or the clock, and never builds HTTP answers (the web layer maps outcomes to 302/401/403).
Rate limits are not decided here; the pipeline reads `decision.rule.rate_limit`.
"""

from __future__ import annotations

from typing import Literal

from gateway.policy.model import Decision, PolicySet, Principal, Rule

__all__ = ["decide"]


def decide(
    policy: PolicySet,
    rule: Rule | None,
    principal: Principal,
    *,
    mfa_enforce: Literal["policy", "all"],
) -> Decision:
    """Decide one request. Order: access level, then authentication, then MFA, then roles.

    With no matching rule, `policy.default_access` is used as the access level (no roles).
    Roles are checked last so an anonymous or one-factor caller is sent to log in (or to MFA)
    rather than told 403, and a one-factor session learns nothing about authorization.
    """
    access = rule.access if rule is not None else policy.default_access
    default = "default_" if rule is None else ""
    if access == "public":
        return Decision("allow", rule, default + "public")
    if access == "deny":
        return Decision("forbidden", rule, "default_deny" if rule is None else "deny_rule")
    needs_mfa = access == "mfa" or mfa_enforce == "all"
    level = principal.auth_level if principal.user is not None else "none"
    if level == "none" or (level == "partial" and not needs_mfa):
        return Decision("login", rule, "authentication_required")
    if needs_mfa and level in ("partial", "password"):
        if principal.mfa_enabled:
            return Decision("mfa", rule, "mfa_required")
        return Decision("mfa_enroll", rule, "mfa_enrollment_required")
    if rule is not None and rule.roles and not (rule.roles & principal.roles):
        return Decision("forbidden", rule, "role_missing")
    return Decision("allow", rule, default + ("mfa" if needs_mfa else "authenticated"))
