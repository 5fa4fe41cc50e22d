"""What every verb module of the CLI shares: exit codes, the config file, error output, and the
shape of the `register` function each verb module exposes.

Imports only the config package: a verb module imports this, never `gateway.cli` itself (the
package face imports the verb modules, so the arrow would run back up).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
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
    "print_table",
    "readable_time",
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


def readable_time(epoch: float | None) -> str:
    """A time for people: `2026-12-04 21:03:52 UTC`, or `never`."""
    if not epoch:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def print_table(
    rows: Sequence[dict[str, object]],
    columns: Sequence[tuple[str, str]],
    *,
    as_json: bool,
    times: Sequence[str] = (),
    empty: str = "(none)",
) -> None:
    """What every list verb prints: `--json` a JSON array of the rows (times in ISO 8601), else
    a header row and aligned columns with readable times. `columns` is (key, heading)."""
    if as_json:
        out = [{k: (_iso(v) if k in times else v) for k, v in row.items()} for row in rows]
        print(json.dumps(out, indent=2))
        return
    if not rows:
        print(empty)
        return
    cells = [[heading for _, heading in columns]]
    for row in rows:
        line = []
        for key, _ in columns:
            value = row.get(key)
            if key in times:
                line.append(readable_time(value))  # type: ignore[arg-type]
            elif isinstance(value, list | tuple):
                line.append(",".join(map(str, value)) or "-")
            else:
                line.append("-" if value in (None, "") else str(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _iso(epoch: object) -> str | None:
    if not isinstance(epoch, int | float) or not epoch:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
