"""The plugin hook API: what a plugin may implement, and the one place hooks are called.

A plugin is a plain class with an optional pydantic `Options` model (its `with:` block) and
async methods named for the pipeline event they hook (docs/plugins.md):

    on_startup(ctx)                  once per worker, after the store and accounts are ready
    on_shutdown()                    once per worker, at clean-up
    on_request(ex)                   rule matched, before identity: may answer instead (reject)
    authenticate(ex)                 no session identity found: an Identity, or None (not mine)
    check_password(username, pw)     a new password is being set: None, or a reason to refuse
    before_forward(ex, headers)      the upstream request headers: add, remove, or answer instead
    after_response(ex, headers)      the response headers, before they are sent
    on_audit(event)                  observes each audit event (a dict), after it is recorded

Failure semantics: a hook that raises a `GatewayError` answers that request with that error on
purpose (e.g. 401 for a wrong API key); `StoreUnavailable` keeps its meaning (503 on protected
routes). Any other exception fails the request closed with 500 `{"error":"plugin_error"}`, is
counted in `gateway_plugin_errors_total{plugin,hook}` and logged with the exception type only
(exception texts may quote request data). A failing password check refuses the password; a
failing audit observer is counted and logged but cannot undo the event. Nothing a plugin does
can stop the process. With no plugins configured each hook list is an empty tuple: the
pipeline checks it and awaits nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from gateway.clock import Clock
from gateway.config import Config
from gateway.http.errors import GatewayError
from gateway.http.exchange import Exchange
from gateway.http.headers import Identity
from gateway.metrics import PLUGIN_ERRORS
from gateway.store.base import StoreUnavailable

__all__ = [
    "HOOKS",
    "HookSet",
    "LoadedPlugin",
    "PASSWORD_CHECK_FAILED",
    "PluginContext",
    "PluginFailed",
    "PLUGINS",
]

log = logging.getLogger("gateway.plugins")
PLUGINS = "plugins"  # gw.services key of the running HookSet
HOOKS = (
    "on_startup",
    "on_shutdown",
    "on_request",
    "authenticate",
    "check_password",
    "before_forward",
    "after_response",
    "on_audit",
)
PASSWORD_CHECK_FAILED = "password_check_failed"  # noqa: S105 - a reason code


class PluginFailed(GatewayError):
    """A plugin raised something other than a GatewayError: the request fails closed."""

    status, code = 500, "plugin_error"


@dataclass(frozen=True, slots=True)
class PluginContext:
    """What `on_startup` gets: the validated config, the worker's services (store, auth...)
    and the clock. `base_dir` resolves relative paths like the rest of the config."""

    name: str
    config: Config
    services: dict[str, Any]
    clock: Clock

    @property
    def base_dir(self) -> Path:
        return self.config.base_dir


@dataclass(slots=True)
class LoadedPlugin:
    name: str  # the `use:` string: bounded (it comes from the config), safe as a metric label
    instance: Any


def failed(name: str, hook: str, exc: BaseException) -> None:
    """Count and log a plugin failure; never the exception text (it may quote secrets)."""
    PLUGIN_ERRORS.labels(name, hook).inc()
    log.error(
        "plugin failed",
        extra={"fields": {"plugin": name, "hook": hook, "error": type(exc).__name__}},
    )


async def call(name: str, hook: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    try:
        return await fn(*args)
    except (GatewayError, StoreUnavailable):
        raise
    except Exception as exc:  # noqa: BLE001 - contained: counted, logged, request fails closed
        raise _contained(name, hook, exc) from None


def _contained(name: str, hook: str, exc: BaseException) -> PluginFailed:
    """Count and log a plugin's failure; the error that fails its request closed."""
    failed(name, hook, exc)
    return PluginFailed(f"plugin_{hook}")


Bound = tuple[tuple[str, Callable[..., Awaitable[Any]]], ...]


def _bound(plugins: list[LoadedPlugin], hook: str) -> Bound:
    return tuple(
        (p.name, getattr(p.instance, hook))
        for p in plugins
        if callable(getattr(p.instance, hook, None))
    )


@dataclass(slots=True)
class HookSet:
    """The running plugins of one worker (or one CLI command), hooks pre-bound in config
    order. Each public attribute is a tuple, empty when no plugin implements the hook."""

    plugins: list[LoadedPlugin] = field(default_factory=list)
    on_request: Bound = ()
    authenticate: Bound = ()
    check_password: Bound = ()
    before_forward: Bound = ()
    after_response: Bound = ()
    on_audit: Bound = ()
    started: list[LoadedPlugin] = field(default_factory=list)

    @classmethod
    def of(cls, plugins: list[LoadedPlugin]) -> HookSet:
        hooks = {h: _bound(plugins, h) for h in HOOKS if h not in ("on_startup", "on_shutdown")}
        return cls(plugins=plugins, **hooks)

    async def start(self, ctx_of: Callable[[str], PluginContext]) -> None:
        """Run every `on_startup` in order; the first failure raises (start-up stops)."""
        for p in self.plugins:
            hook = getattr(p.instance, "on_startup", None)
            if callable(hook):
                await hook(ctx_of(p.name))
            self.started.append(p)

    async def stop(self) -> None:
        """Run `on_shutdown` of the started plugins, in reverse; failures are contained."""
        while self.started:
            p = self.started.pop()
            hook = getattr(p.instance, "on_shutdown", None)
            if not callable(hook):
                continue
            try:
                await hook()
            except Exception as exc:  # noqa: BLE001 - shutdown goes on for the others
                failed(p.name, "on_shutdown", exc)

    async def run_on_request(self, ex: Exchange) -> web.StreamResponse | None:
        for name, fn in self.on_request:
            answer = await call(name, "on_request", fn, ex)
            if answer is not None:
                return _response(name, "on_request", answer)
        return None

    async def run_authenticate(self, ex: Exchange) -> Identity | None:
        for name, fn in self.authenticate:
            identity = await call(name, "authenticate", fn, ex)
            if identity is None:
                continue
            if not isinstance(identity, Identity):
                raise _contained(name, "authenticate", TypeError("not an Identity"))
            return identity
        return None

    async def run_before_forward(
        self, ex: Exchange, headers: CIMultiDict[str]
    ) -> web.StreamResponse | None:
        for name, fn in self.before_forward:
            answer = await call(name, "before_forward", fn, ex, headers)
            if answer is not None:
                return _response(name, "before_forward", answer)
        return None

    async def run_after_response(self, ex: Exchange, headers: CIMultiDict[str]) -> None:
        for name, fn in self.after_response:
            await call(name, "after_response", fn, ex, headers)

    def password_checks(self) -> list[Callable[[str, str], Awaitable[str | None]]]:
        """Guarded callables for `Users.checks`: a failing check refuses the password."""
        return [_password_check(name, fn) for name, fn in self.check_password]

    def audit_observers(self) -> list[Callable[[dict[str, object]], Awaitable[None]]]:
        return [_observer(name, fn) for name, fn in self.on_audit]


EMPTY = HookSet()


def _response(name: str, hook: str, answer: object) -> web.StreamResponse:
    if isinstance(answer, web.StreamResponse):
        return answer
    raise _contained(name, hook, TypeError("not a response"))


def _password_check(
    name: str, fn: Callable[..., Awaitable[Any]]
) -> Callable[[str, str], Awaitable[str | None]]:
    async def check(username: str, password: str) -> str | None:
        try:
            problem = await fn(username, password)
        except Exception as exc:  # noqa: BLE001 - fail closed: the password is not accepted
            failed(name, "check_password", exc)
            return PASSWORD_CHECK_FAILED
        if problem is not None and not isinstance(problem, str):
            failed(name, "check_password", TypeError("not a reason string"))
            return PASSWORD_CHECK_FAILED
        return problem or None

    return check


def _observer(
    name: str, fn: Callable[..., Awaitable[Any]]
) -> Callable[[dict[str, object]], Awaitable[None]]:
    async def observe(event: dict[str, object]) -> None:
        try:
            await fn(dict(event))
        except Exception as exc:  # noqa: BLE001 - the event is recorded already; observers observe
            failed(name, "on_audit", exc)

    return observe
