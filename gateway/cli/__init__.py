"""The `gateway` command line (DESIGN.md section 7): one module per verb group.

`serve` (run, check), `users` (users, sessions), `keys` (keys, mfa secrets), `policy`
(explain), `audit` (audit tail); `common` holds what they share. Plugins add verbs through
`gateway.startup.plugins`. `-c FILE` works before or after the verb; without it
$GATEWAY_CONFIG, else ./gateway.yaml. Exit codes: 0 ok, 1 invalid config/policy or failed
command, 2 missing or malformed key material. Error output names keys and files, never
secret values.

May import every other package: nothing inside gateway imports the CLI (plugins' verbs import
`gateway.cli.common` only).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from gateway import __version__
from gateway.cli import audit, keys, policy, serve, users
from gateway.cli.common import Parser, Register, fail
from gateway.config import ConfigError, load_config
from gateway.policy import PolicyError

__all__ = ["main", "Parser"]

# The verb groups in the order of `gateway --help`.
VERBS: tuple[Register, ...] = (
    serve.register,
    users.register,
    audit.register,
    keys.register,
    policy.register,
)


# Verbs that first-party plugins add: without the plugin enabled, say how to enable it.
PLUGIN_VERBS = {"apikeys": "plugins.api_keys"}


class _TopParser(Parser):
    def error(self, message: str) -> NoReturn:
        for verb, plugin in PLUGIN_VERBS.items():
            if f"invalid choice: '{verb}'" in message:
                message = (
                    f"'{verb}' comes with the {plugin} plugin, which this config does not enable:"
                    f" add `- use: {plugin}` under `plugins:` in gateway.yaml (docs/plugins.md)"
                )
        super().error(message)


class _PreParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="config file (default: $GATEWAY_CONFIG or ./gateway.yaml)",
    )
    return common


def _parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    common = _common()
    parser = _TopParser(prog="gateway", parents=[common], description="Portcullis security gateway")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for register in VERBS:
        register(verbs, common)
    _plugin_verbs(argv, verbs, common)
    return parser


def _plugin_verbs(
    argv: list[str] | None, verbs: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    """Verbs of the configured plugins (e.g. `apikeys`): the config file is found before
    parsing (`-c` may come after the verb); an unreadable or invalid one adds none (`check`
    reports it)."""
    from gateway.startup.plugins import add_plugin_commands

    args = sys.argv[1:] if argv is None else argv
    # Every spelling argparse accepts (`-c F`, `-cF`, `--config F`, `--config=F`, `--conf F`),
    # anywhere in argv; the last one wins, as in the full parse.
    pre = _PreParser(add_help=False, parents=[_common()])
    try:
        known, _ = pre.parse_known_args(args)
    except ValueError:
        return  # e.g. `-c` without a file: the full parse reports it
    path = getattr(known, "config", None) or os.environ.get("GATEWAY_CONFIG") or "gateway.yaml"
    try:
        config = load_config(path)
    except ConfigError:
        return
    add_plugin_commands(config.plugins, verbs, common)


def main(argv: list[str] | None = None) -> int:
    args = _parser(argv).parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        return fail(str(exc))
    except PolicyError as exc:
        return fail(f"invalid policy:\n{exc}")
    except KeyboardInterrupt:
        return 130
