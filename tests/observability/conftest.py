"""Fixtures for observability tests: `gateway run` as a real subprocess (its own metrics
listener, an `audit.log` file, a SQLite store, a KEK file) in front of the storing upstream of
tests/encryption, users made with the real CLI; helpers to scrape /metrics and read the trail
both ways an operator would (`gateway audit tail` and the audit.log file). The process helpers
live in tests/support/gateway_process.py (shared with tests/auth/test_lockout_processes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.encryption.conftest import Store, store_upstream  # noqa: F401 - fixture
from tests.support import gateway_process as support
from tests.support.gateway_process import (  # noqa: F401 - re-exported for the tests here
    PASSWORD,
    Running,
    add_user,
    events_in,
    gateway_cli,
    start_gateway,
    stop_gateway,
    wait_until,
)

POLICY = """rules:
  - name: form
    match: {paths: ["/form/**"]}
    access: authenticated
    encrypt: {request: {form_fields: [title]}, response: tokens}
  - name: admin
    match: {paths: ["/admin/**"]}
    access: authenticated
    roles: [admin]
  - name: blocked
    match: {paths: ["/blocked/**"]}
    access: deny
  - name: open
    match: {paths: ["/**"]}
    access: public
"""


def write_config(folder: Path, upstream_url: str, **overrides: object) -> Path:
    return support.write_config(folder, upstream_url, POLICY, **overrides)


@pytest.fixture
async def running(store_upstream: Store, tmp_path: Path) -> AsyncIterator[Running]:  # noqa: F811
    """The gateway subprocess with user alice (role staff, not admin)."""
    config = write_config(tmp_path, store_upstream.url)
    add_user(config, "alice", "staff")
    gw = start_gateway(config)
    yield gw
    stop_gateway(gw)
