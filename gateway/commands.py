"""Imports the modules that add verbs to the CLI (each registers with `cli.extension`)."""

from gateway import policy_cli  # noqa: F401
import gateway.auth.cli  # noqa: F401
