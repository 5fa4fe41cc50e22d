"""`gateway run` and `gateway check`: serve, or validate config and policies without serving."""

from __future__ import annotations

import argparse
import os
import sys

from gateway.cli.common import EXIT_FAILED, EXIT_OK, config_path, fail, load
from gateway.config import ConfigError, with_listeners

__all__ = ["LISTEN_ENV", "METRICS_LISTEN_ENV", "cmd_check", "cmd_run", "register"]

# Several instances on one host: each gets its own ports without its own config file.
LISTEN_ENV = "GATEWAY_LISTEN"
METRICS_LISTEN_ENV = "GATEWAY_METRICS_LISTEN"


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.startup.checks import check_all

    problems = check_all(config_path(args), dev=args.dev)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        print(f"invalid: {len(problems)} error(s)", file=sys.stderr)
        return EXIT_FAILED
    print(f"ok: {config_path(args)} is valid")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    # The server's imports (aiohttp app, every endpoint) load only for `run`.
    from gateway.logs import setup_logging
    from gateway.startup import server
    from gateway.startup.assemble import StartupError, build

    setup_logging()
    # The flag, else the environment, else gateway.yaml.
    listen = args.listen or os.environ.get(LISTEN_ENV) or None
    metrics_listen = args.metrics_listen or os.environ.get(METRICS_LISTEN_ENV) or None
    try:
        config = with_listeners(load(args), listen=listen, metrics_listen=metrics_listen)
    except ConfigError as exc:
        return fail(str(exc))
    # Workers are started with `run --worker -c FILE`: they read the same values from here.
    if listen:
        os.environ[LISTEN_ENV] = listen
    if metrics_listen:
        os.environ[METRICS_LISTEN_ENV] = metrics_listen
    workers = args.workers or config.workers
    if workers > 1 and not args.worker:
        path = str(config.path or config_path(args))
        return server.supervise(server.worker_argv(path, args.dev), workers, config.metrics.listen)
    try:
        return server.serve(config, dev=args.dev, build=build, metrics=not args.worker)
    except StartupError as exc:
        return fail(str(exc), exc.exit_code)


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    run = verbs.add_parser("run", parents=[common], help="serve the gateway")
    run.add_argument("--workers", type=int, default=None, help="worker processes")
    run.add_argument("--dev", action="store_true", help="allow a local dev KEK file")
    run.add_argument(
        "--listen", metavar="HOST:PORT", help=f"the public listener (${LISTEN_ENV}; else `listen`)"
    )
    run.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help=f"the metrics listener, or off (${METRICS_LISTEN_ENV}; else `metrics.listen`)",
    )
    run.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    check = verbs.add_parser(
        "check", parents=[common], help="validate config, key material and policies"
    )
    check.add_argument(
        "--dev", action="store_true", help="a KEK that is not set is fine (run --dev makes one)"
    )
    check.set_defaults(func=cmd_check)
