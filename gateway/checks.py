"""`gateway check`: every problem in the config and the policies, at once, as printable lines.
Never prints secret values (config errors redact them)."""

from __future__ import annotations

from pathlib import Path

from gateway.config import ConfigError, load_config

__all__ = ["check_all"]


def check_all(path: Path) -> list[str]:
    try:
        load_config(path)
    except ConfigError as exc:
        return [f"{exc.source}: {p}" for p in exc.problems]
    return []
