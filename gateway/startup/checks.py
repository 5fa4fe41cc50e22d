"""`gateway check`: every problem in the config and the policies, at once, as printable lines.

Every stage runs even when an earlier one failed: the config's schema, `keys.active` and the
plugins' options (gateway/config/), the key material `gateway run` would need, then the
policies, found through the raw `policies`
value (else the default glob) when the config itself is invalid. Every line names the file and
the key. Never prints secret values (config errors redact them)."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.config import Config, ConfigError, load_config
from gateway.crypto import KeyMaterialError
from gateway.crypto.keyring import Keyring
from gateway.policy import ACCESS_LEVELS, PolicyError, load_policies

__all__ = ["check_all"]

_DEFAULT_POLICIES = list(Config.model_fields["policies"].default)
_DEFAULT_ACCESS = Config.model_fields["default_access"].default


def check_all(path: Path, *, dev: bool = False, keys: bool = True) -> list[str]:
    """Every problem at once. `dev`: a KEK that is not set is no problem (`run --dev` would
    make a local one); `keys=False` leaves the key material to the caller (the container
    entrypoint, which answers it with its own exit code)."""
    problems: list[str] = []
    try:
        config = load_config(path)
    except ConfigError as exc:
        problems = [f"{exc.source}: {p}" for p in exc.problems]
        if not isinstance(exc.data, dict):
            return problems  # unreadable or not YAML: there is nothing to find policies by
        base_dir = Path(path).resolve().parent
        patterns, default_access, case_insensitive = _raw_policy_settings(exc.data)
    else:
        if keys:
            problems.extend(_key_problems(config, dev=dev))
        base_dir = config.base_dir
        patterns = list(config.policies)
        default_access = config.default_access
        case_insensitive = config.policy_options.case_insensitive_paths
    try:
        load_policies(
            patterns,
            base_dir=base_dir,
            default_access=default_access,
            case_insensitive_paths=case_insensitive,
        )
    except PolicyError as exc:
        problems.extend(str(p) for p in exc.problems)
    return problems


def _key_problems(config: Config, *, dev: bool) -> list[str]:
    """What `gateway run` would stop on with exit 2, found without starting: the messages name
    the KEK id and where it is read from, never a value."""
    refs = dict(config.keys.kek)
    active = config.keys.active
    if dev:
        ref = refs.get(active, "")
        if ref.startswith("env:") and not os.environ.get(ref[4:], "").strip():
            refs.pop(active)
            if not refs:
                return []
            active = next(iter(refs))
    try:
        Keyring.from_refs(active, refs, environ=os.environ, base_dir=config.base_dir)
    except KeyMaterialError as exc:
        return [f"{config.path or 'config'}: keys.kek: {exc}"]
    return []


def _raw_policy_settings(data: dict) -> tuple[list[str], str, bool]:
    """What the policies need, read from a config that failed validation: a value of the
    wrong type falls back to its default (the config stage has reported it already)."""
    raw = data.get("policies", _DEFAULT_POLICIES)
    if isinstance(raw, list) and all(isinstance(p, str) for p in raw):
        patterns = raw
    else:
        patterns = _DEFAULT_POLICIES
    access = data.get("default_access", _DEFAULT_ACCESS)
    options = data.get("policy_options")
    case = options.get("case_insensitive_paths") if isinstance(options, dict) else None
    return (
        patterns,
        access if access in ACCESS_LEVELS else _DEFAULT_ACCESS,
        case if isinstance(case, bool) else False,
    )
