"""`gateway explain METHOD URL [--user U] [--roles a,b] [--mfa]`: which rule matches and what
the gateway would decide, so ops can test a policy before deploying it."""

from __future__ import annotations

import argparse

from gateway.cli import EXIT_OK, extension, load
from gateway.policy import Principal, explain, load_policies

__all__ = ["register"]


def cmd_explain(args: argparse.Namespace) -> int:
    config = load(args)
    policy = load_policies(
        list(config.policies),
        base_dir=config.base_dir,
        default_access=config.default_access,
        case_insensitive_paths=config.policy_options.case_insensitive_paths,
    )
    roles = frozenset(r.strip() for r in (args.roles or "").split(",") if r.strip())
    if args.user:
        level = "mfa" if args.mfa else "password"
        principal = Principal(user=args.user, roles=roles, auth_level=level, mfa_enabled=args.mfa)
    else:
        principal = Principal.anonymous()
    print(
        explain(
            policy,
            args.method.upper(),
            args.url,
            principal=principal,
            client_ip=args.ip,
            mfa_enforce=config.mfa.enforce,
        )
    )
    return EXIT_OK


@extension
def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = verbs.add_parser("explain", parents=[common], help="show the rule and decision for a URL")
    p.add_argument("method")
    p.add_argument("url", help="a path or a full URL")
    p.add_argument("--user", help="decide as this (logged-in) user")
    p.add_argument("--roles", help="comma-separated roles of that user")
    p.add_argument("--mfa", action="store_true", help="the user has completed MFA")
    p.add_argument("--ip", default="127.0.0.1", help="client IP for `networks` rules")
    p.set_defaults(func=cmd_explain)
