"""`gateway explain`: what the policy would do with one request, in words for operators.

Owns turning (method, URL or path, principal) into a short report: the canonical path (or the
400 reason), the matching rule (file and name) or the default, and the decision with its reason.
Runs the same canonicalize -> match -> decide steps as the pipeline. Never reads config files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from gateway.http.canonical import BadPath, canonicalize
from gateway.policy.decide import decide
from gateway.policy.model import PolicySet, Principal

__all__ = ["explain"]


def explain(
    policy: PolicySet,
    method: str,
    url_or_path: str,
    *,
    principal: Principal,
    client_ip: str = "127.0.0.1",
    mfa_enforce: Literal["policy", "all"],
    host: str = "",
) -> str:
    """A multi-line report. A full URL's host is used for host matching (else `host`)."""
    target = url_or_path
    if "://" in url_or_path:
        parts = urlsplit(url_or_path)
        host = parts.netloc.rpartition("@")[2]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    who = principal.user or "anonymous"
    lines = [
        f"request:   {method} {url_or_path}",
        f"host:      {host or '(none)'}   client: {client_ip}",
        f"identity:  {who} auth_level={principal.auth_level} "
        f"roles=[{','.join(sorted(principal.roles))}] mfa_enabled={principal.mfa_enabled}",
    ]
    try:
        canonical = canonicalize(target)
    except BadPath as exc:
        lines.append(f"canonical: refused ({exc.reason})")
        lines.append(f"decision:  400 bad request (reason={exc.reason})")
        return "\n".join(lines)
    lines.append(
        f"canonical: {canonical.path}" + (f"  query: {canonical.query}" if canonical.query else "")
    )
    rule = policy.match(method, host, canonical.path, client_ip)
    if rule is None:
        lines.append(f"rule:      no rule: default_access={policy.default_access}")
    else:
        lines.append(f"rule:      {rule.name} ({Path(rule.file).name}, access={rule.access})")
    decision = decide(policy, rule, principal, mfa_enforce=mfa_enforce)
    lines.append(f"decision:  {decision.outcome} (reason={decision.reason})")
    if rule is not None and decision.allowed and rule.rate_limit is not None:
        rl = rule.rate_limit
        lines.append(f"limit:     {rl.count} per {rl.per_seconds}s by {rl.by}")
    if rule is not None and rule.encrypt is not None:
        enc = rule.encrypt
        lines.append(
            f"encrypt:   request={enc.request_kind} response={enc.response} scope={enc.scope}"
        )
    return "\n".join(lines)
