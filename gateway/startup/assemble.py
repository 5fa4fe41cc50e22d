"""Start-up wiring: from a validated Config to a running aiohttp application.

The one place that decides which parts a worker has and in which order they start: store,
keys, the password-hashing threads, policies, plugins, metrics. Fails closed: a part that
cannot start stops the worker with the contract's exit code (1 config/policy, 2 key material)
instead of serving half-configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

import gateway.portal.api  # noqa: F401 - registers the account API endpoints
import gateway.portal.mfa_pages  # noqa: F401 - registers the MFA endpoints
import gateway.portal.pages  # noqa: F401 - registers login, logout and password endpoints
from gateway.auth.service import install as install_auth
from gateway.auth.users import HashingPlan, HashPool
from gateway.clock import Clock
from gateway.config import Config
from gateway.crypto import KeyMaterialError
from gateway.crypto.datakeys import DataKeys
from gateway.crypto.keyring import Keyring, dev_keyfile
from gateway.edge.access import POLICY
from gateway.edge.app import build_app
from gateway.edge.state import Gateway
from gateway.hooks import PLUGINS
from gateway.metrics import RULES_LOADED
from gateway.policy import PolicyError, PolicyHolder, ReloadResult
from gateway.startup.audit_events import key_events, policy_events
from gateway.startup.plugins import PluginLoadError, PluginStartError, open_plugins
from gateway.store import open_store

__all__ = ["build", "StartupError"]

log = logging.getLogger("gateway.assemble")


class StartupError(Exception):
    """A part could not start; `exit_code` is what the process should exit with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


async def build(
    config: Config, dev: bool = False, *, clock: Clock | None = None
) -> tuple[web.Application, Callable[[], None]]:
    gw = Gateway.from_config(config, clock=clock)
    keyring = load_keyring(config, dev)
    try:
        store = await open_store(config.store.url, base_dir=config.base_dir, clock=gw.clock)
    except (ValueError, OSError) as exc:
        raise StartupError(f"store.url: {exc}") from None
    gw.services["store"] = store
    gw.ready_checks.append(("store", store.ping))
    # Argon2's threads, on cores of their own where there are several (gateway/auth/users.py
    # says how they are placed and why); every worker of `workers: N` makes the same plan.
    hashing = HashPool(HashingPlan.for_this_process())
    log.info("password hashing", extra={"fields": {**hashing.plan.public(), "pid": os.getpid()}})
    try:
        auth = await install_auth(gw.services, config, store, gw.clock, keyring, pool=hashing)
        gw.services["datakeys"] = DataKeys(
            store, keyring, gw.clock, on_event=key_events(auth.audit)
        )
        hooks = await open_plugins(config, gw.services, gw.clock)
    except (PluginLoadError, PluginStartError) as exc:
        hashing.shutdown()
        await store.close()
        raise StartupError(str(exc)) from None
    gw.services[PLUGINS] = hooks

    async def close_store(app: web.Application) -> None:
        await hooks.stop()
        hashing.shutdown()
        await store.close()

    holder = load_policy(config, policy_events(auth.audit, asyncio.get_running_loop()))
    gw.services[POLICY] = holder

    async def policies_loaded() -> None:
        if not holder.current.sources:
            raise RuntimeError("no policy loaded")

    gw.ready_checks.append(("policies", policies_loaded))
    app = build_app(gw, on_startup=[_start_watch(holder)], on_cleanup=[_stop_watch, close_store])

    def on_reload() -> None:
        holder.reload()  # the holder's hook counts, sets the rules gauge and audits

    return app, on_reload


def load_keyring(config: Config, dev: bool) -> Keyring:
    """Fail closed (exit 2) on missing or malformed key material; `--dev` may use a local file."""
    refs = dict(config.keys.kek)
    active = config.keys.active
    ref = refs.get(active, "")
    if dev and ref.startswith("env:") and not os.environ.get(ref[4:], "").strip():
        try:
            (config.base_dir / "var").mkdir(mode=0o700, parents=True, exist_ok=True)
            refs[active] = dev_keyfile(config.base_dir / "var" / "dev-kek")
        except (KeyMaterialError, OSError) as exc:
            raise StartupError(f"dev key file: {exc}", 2) from None
        log.warning(
            "DEV MODE: %s is not set; using the local key file var/dev-kek for kek %r. "
            "Anyone who can read that file can decrypt the data. Never use this in production.",
            ref[4:],
            active,
        )
    try:
        return Keyring.from_refs(active, refs, environ=os.environ, base_dir=config.base_dir)
    except KeyMaterialError as exc:
        raise StartupError(str(exc), 2) from None


def load_policy(
    config: Config, on_reload: Callable[[ReloadResult], None] | None = None
) -> PolicyHolder:
    try:
        holder = PolicyHolder(
            list(config.policies),
            base_dir=config.base_dir,
            default_access=config.default_access,
            case_insensitive_paths=config.policy_options.case_insensitive_paths,
            on_reload=on_reload,
        )
    except PolicyError as exc:
        raise StartupError(f"invalid policy:\n{exc}", 1) from None
    RULES_LOADED.set(len(holder.current.rules))
    return holder


_WATCH = web.AppKey("policy_watch", asyncio.Task)


def _start_watch(holder: PolicyHolder) -> Callable[[web.Application], Awaitable[None]]:
    async def start(app: web.Application) -> None:
        app[_WATCH] = asyncio.create_task(holder.watch(1.0))

    return start


async def _stop_watch(app: web.Application) -> None:
    task = app.get(_WATCH)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
