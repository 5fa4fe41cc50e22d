"""The policy engine: YAML route rules, first-match lookup, decisions, hot reload, explain.

Pipeline use: `rule = holder.current.match(method, host, canonical_path, client_ip)` then
`decide(policy, rule, principal, mfa_enforce=...)`. Never imports the web layer and never reads
any file but the policy files.

May import: `gateway.http.canonical` only (the one canonical path form rules are written in).
"""

from gateway.policy.decide import decide
from gateway.policy.errors import PolicyError, PolicyProblem
from gateway.policy.explain import explain
from gateway.policy.loader import load_policies
from gateway.policy.matcher import build_policy_set
from gateway.policy.model import (
    ACCESS_LEVELS,
    Decision,
    Encrypt,
    Match,
    PathPattern,
    PolicySet,
    Principal,
    RateLimit,
    Rule,
)
from gateway.policy.reload import PolicyHolder, ReloadResult

__all__ = [
    "ACCESS_LEVELS",
    "Decision",
    "Encrypt",
    "Match",
    "PathPattern",
    "PolicyError",
    "PolicyHolder",
    "PolicyProblem",
    "PolicySet",
    "Principal",
    "RateLimit",
    "ReloadResult",
    "Rule",
    "build_policy_set",
    "decide",
    "explain",
    "load_policies",
]
