"""Tools some tests need from the machine (Chromium, hadolint).

On a developer machine a missing tool skips those tests with the install hint. Under CI
(`.ci/run` exports PORTCULLIS_CI=1 after installing them) a missing tool is a failure, so a
broken install can never turn the browser or Dockerfile tests into silent skips.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["missing_tool"]


def missing_tool(message: str) -> None:
    if os.environ.get("PORTCULLIS_CI"):
        pytest.fail(f"required under CI: {message}")
    pytest.skip(message)
