"""What every verb module of the CLI shares: exit codes, the config file, error output, and the
shape of the `register` function each verb module exposes.

Imports only the config package: a verb module imports this, never `gateway.cli` itself (the
package face imports the verb modules, so the arrow would run back up).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from gateway.config import Config, load_config

__all__ = [
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_KEYS",
    "Parser",
    "Register",
    "config_path",
    "fail",
    "load",
]

EXIT_OK, EXIT_FAILED, EXIT_KEYS = 0, 1, 2
# Each verb module's `register(verbs, common)` adds its sub-parsers.
Register = Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None]


def config_path(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "config", None) or os.environ.get("GATEWAY_CONFIG") or "gateway.yaml")


def load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


def fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"gateway: {message}", file=sys.stderr)
    return code


class Parser(argparse.ArgumentParser):
    """Usage errors exit 1 (exit 2 is reserved for missing or malformed key material).
    Sub-parsers (every verb, plugins' too) are made of this class as well."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_FAILED, f"{self.prog}: error: {message}\n")
