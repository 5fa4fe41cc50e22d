"""Starting the configured plugins for a worker or a CLI command, and their CLI verbs.

Finding a plugin and validating its options is `gateway.config.plugins` (config load time);
this module instantiates the classes, runs their `on_startup`, joins their password checks and
audit observers to the accounts, and stops the started ones again when one fails.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.auth.service import AUTH
from gateway.clock import Clock
from gateway.config import Config
from gateway.config.plugins import PluginLoadError, find_plugin, validate_options
from gateway.hooks import HookSet, LoadedPlugin, PluginContext

__all__ = [
    "PluginLoadError",
    "PluginStartError",
    "add_plugin_commands",
    "instantiate",
    "open_plugins",
]


def instantiate(refs: tuple[Any, ...], base_dir: Path) -> list[LoadedPlugin]:
    """One instance per configured plugin, options validated (the config was checked
    already; this raises PluginLoadError or ValidationError only if it changed meanwhile)."""
    loaded = []
    for ref in refs:
        cls = find_plugin(ref.use)
        options = validate_options(cls, dict(ref.with_), base_dir)
        try:
            instance = cls(options) if options is not None else cls()
        except Exception as exc:  # noqa: BLE001 - reported with the plugin's name
            raise PluginStartError(
                f"plugin {ref.use}: could not be created ({_reason(exc)})"
            ) from None
        loaded.append(LoadedPlugin(ref.use, instance))
    return loaded


def add_plugin_commands(
    refs: tuple[Any, ...], verbs: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    """Let configured plugins add CLI verbs: a class attribute `commands(verbs, common)`."""
    seen: set[type] = set()
    for ref in refs:
        try:
            cls = find_plugin(ref.use)
        except PluginLoadError:
            continue  # `gateway check` reports it
        register = getattr(cls, "commands", None)
        if callable(register) and cls not in seen:
            seen.add(cls)
            register(verbs, common)


async def open_plugins(config: Config, services: dict[str, Any], clock: Clock) -> HookSet:
    """Instantiate and start the configured plugins for a worker or a CLI command: their
    password checks join the accounts' checks and their audit observers the audit writer.
    Raises PluginStartError naming the plugin if one cannot start (the started ones are
    stopped again)."""
    hooks = HookSet.of(instantiate(config.plugins, config.base_dir))
    if not hooks.plugins:
        return hooks
    try:
        await hooks.start(lambda name: PluginContext(name, config, services, clock))
    except Exception as exc:  # noqa: BLE001 - reported with the plugin's name, no text
        failing = hooks.plugins[len(hooks.started)].name
        await hooks.stop()
        raise PluginStartError(f"plugin {failing}: start-up failed ({_reason(exc)})") from None
    auth = services.get(AUTH)
    if auth is not None:
        auth.users.checks.extend(hooks.password_checks())
        auth.audit.observers.extend(hooks.audit_observers())
    return hooks


def _reason(exc: BaseException) -> str:
    """A start-up error's own message only when it is the plugin's deliberate PluginStartError
    (written for operators); otherwise its type (texts of arbitrary errors may quote data)."""
    return str(exc) if isinstance(exc, PluginStartError) else type(exc).__name__


class PluginStartError(Exception):
    """A plugin could not start. Raise it from `on_startup` with an operator-facing message
    (never a secret) to stop the worker with exit code 1."""
