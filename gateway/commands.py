"""Imports the modules that add verbs to the CLI (each registers with `cli.extension`)."""

import gateway.auth.cli  # noqa: F401
from gateway import audit_cli, crypto_cli, policy_cli  # noqa: F401
