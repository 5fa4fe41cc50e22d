"""The `gateway` command line (DESIGN.md section 7).

`-c FILE` works before or after the verb; without it $GATEWAY_CONFIG, else ./gateway.yaml.
Exit codes: 0 ok, 1 invalid config/policy or failed command, 2 missing or malformed key
material. Error output names keys and files, never secret values.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from gateway import __version__
from gateway.config import Config, ConfigError, load_config

__all__ = ["main", "COMMANDS", "Parser"]

EXIT_OK, EXIT_FAILED, EXIT_KEYS = 0, 1, 2
Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def config_path(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "config", None) or os.environ.get("GATEWAY_CONFIG") or "gateway.yaml")


def load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


def fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"gateway: {message}", file=sys.stderr)
    return code


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.checks import check_all

    problems = check_all(config_path(args))
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        print(f"invalid: {len(problems)} error(s)", file=sys.stderr)
        return EXIT_FAILED
    print(f"ok: {config_path(args)} is valid")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from gateway import server
    from gateway.assemble import build
    from gateway.logs import setup_logging

    setup_logging()
    try:
        config = load(args)
    except ConfigError as exc:
        return fail(str(exc))
    workers = args.workers or config.workers
    if workers > 1 and not args.worker:
        path = str(config.path or config_path(args))
        return server.supervise(server.worker_argv(path, args.dev), workers, config.metrics.listen)
    from gateway.assemble import StartupError

    try:
        return server.serve(config, dev=args.dev, build=build, metrics=not args.worker)
    except StartupError as exc:
        return fail(str(exc), exc.exit_code)


class Parser(argparse.ArgumentParser):
    """Usage errors exit 1 (exit 2 is reserved for missing or malformed key material).
    Sub-parsers (every verb, plugins' too) are made of this class as well."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_FAILED, f"{self.prog}: error: {message}\n")


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
    parser = Parser(prog="gateway", parents=[common], description="Portcullis security gateway")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    run = verbs.add_parser("run", parents=[common], help="serve the gateway")
    run.add_argument("--workers", type=int, default=None, help="worker processes")
    run.add_argument("--dev", action="store_true", help="allow a local dev KEK file")
    run.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    check = verbs.add_parser("check", parents=[common], help="validate config and policies")
    check.set_defaults(func=cmd_check)

    for register in _EXTENSIONS:
        register(verbs, common)
    _plugin_verbs(argv, verbs, common)
    return parser


def _plugin_verbs(
    argv: list[str] | None, verbs: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    """Verbs of the configured plugins (e.g. `apikeys`): the config file is found before
    parsing (`-c` may come after the verb); an unreadable or invalid one adds none (`check`
    reports it)."""
    from gateway.plugin_loader import add_plugin_commands

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


_EXTENSIONS: list[Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None]] = []


def extension(
    fn: Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None],
) -> Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None]:
    """Feature modules add their verbs (users, keys, sessions, explain...) through this."""
    _EXTENSIONS.append(fn)
    return fn


def main(argv: list[str] | None = None) -> int:
    import gateway.commands  # noqa: F401 - registers the feature verbs
    from gateway.policy import PolicyError

    args = _parser(argv).parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        return fail(str(exc))
    except PolicyError as exc:
        return fail(f"invalid policy:\n{exc}")
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # `python -m gateway.cli` runs this file as __main__; feature verbs register with the
    # importable `gateway.cli`, so run that module's main.
    from gateway.cli import main as _main

    sys.exit(_main())
