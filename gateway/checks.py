"""`gateway check`: every problem in the config and the policies, at once, as printable lines.
Never prints secret values (config errors redact them)."""

from __future__ import annotations

from pathlib import Path

from gateway.config import ConfigError, load_config
from gateway.policy import PolicyError, load_policies

__all__ = ["check_all"]


def check_all(path: Path) -> list[str]:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return [f"{exc.source}: {p}" for p in exc.problems]
    try:
        load_policies(
            list(config.policies),
            base_dir=config.base_dir,
            default_access=config.default_access,
            case_insensitive_paths=config.policy_options.case_insensitive_paths,
        )
    except PolicyError as exc:
        return [str(p) for p in exc.problems]
    return []
