"""Helpers for policy tests: write policy files into a temporary folder and load them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.policy import PolicySet, load_policies


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(
    folder: Path, *, default_access: str = "deny", case_insensitive_paths: bool = False
) -> PolicySet:
    return load_policies(
        ["policies/*.yaml"],
        base_dir=folder,
        default_access=default_access,
        case_insensitive_paths=case_insensitive_paths,
    )


@pytest.fixture
def policy_dir(tmp_path: Path) -> Callable[..., Path]:
    def _write(name: str, text: str) -> Path:
        return write(tmp_path / "policies", name, text)

    return _write
