"""Finding plugins by name and validating their `with:` options (config load time).

`use: NAME` is looked up first among the entry points of group `gateway.plugins` (third-party
packages), then imported as a module path (`plugins.security_headers` is a first-party one).
The entry point or module gives a class (a module's `Plugin` attribute). Its `Options` pydantic
model validates `with:`; a class without one takes no options. Every problem names the plugin
and the key. Values are never echoed for keys that look secret.
"""

from __future__ import annotations

import argparse
import importlib
import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.auth.service import AUTH
from gateway.clock import Clock
from gateway.config import Config, shown_value
from gateway.hooks import HookSet, LoadedPlugin, PluginContext

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginLoadError",
    "PluginStartError",
    "open_plugins",
    "add_plugin_commands",
    "find_plugin",
    "instantiate",
    "problems_of",
]

ENTRY_POINT_GROUP = "gateway.plugins"
_SECRETISH = re.compile(r"(secret|token|password|passwd|key|credential|auth)", re.IGNORECASE)


class PluginLoadError(Exception):
    """`use:` names nothing loadable; the message says what was tried, never a value."""


def find_plugin(use: str) -> type:
    """The plugin class named by `use` (entry point name, else module path)."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == use:
            try:
                found = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is a config problem
                raise PluginLoadError(
                    f"entry point {use!r} failed to load ({type(exc).__name__})"
                ) from None
            return _plugin_class(found, use)
    try:
        module = importlib.import_module(use)
    except ModuleNotFoundError as exc:
        if exc.name and (use == exc.name or use.startswith(exc.name + ".")):
            raise PluginLoadError(
                f"no plugin named {use!r} (no entry point in group {ENTRY_POINT_GROUP!r}, "
                "no such module)"
            ) from None
        raise PluginLoadError(f"plugin module {use!r} failed to import ({exc.name})") from None
    except Exception as exc:  # noqa: BLE001
        raise PluginLoadError(
            f"plugin module {use!r} failed to import ({type(exc).__name__})"
        ) from None
    return _plugin_class(module, use)


def _plugin_class(found: object, use: str) -> type:
    if isinstance(found, type):
        return found
    cls = getattr(found, "Plugin", None)
    if isinstance(cls, type):
        return cls
    raise PluginLoadError(f"{use!r} has no Plugin class")


class _NoOptionsTaken(ValueError):
    """A plugin without an `Options` model was given a `with:` block."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(names)
        self.names = names


def _validate(cls: type, options: dict[str, Any], base_dir: Path) -> BaseModel | None:
    model = getattr(cls, "Options", None)
    if model is None:
        if options:
            raise _NoOptionsTaken(sorted(options))
        return None
    return model.model_validate(options, context={"base_dir": base_dir})


def _show(key: str, value: object) -> str:
    if _SECRETISH.search(key.rpartition(".")[2]):
        return "<redacted>"
    return shown_value(value)


def problems_of(refs: tuple[Any, ...], base_dir: Path) -> list[tuple[str, str, str]]:
    """(key, shown value, expected) for every problem of the configured plugins."""
    out: list[tuple[str, str, str]] = []
    for i, ref in enumerate(refs):
        where = f"plugins.{i}"
        try:
            cls = find_plugin(ref.use)
        except PluginLoadError as exc:
            out.append((f"{where}.use", repr(ref.use), str(exc)))
            continue
        try:
            _validate(cls, dict(ref.with_), base_dir)
        except ValidationError as exc:
            out.extend(_option_problems(where, ref.use, exc))
        except _NoOptionsTaken as exc:
            for name in exc.names:
                out.append(
                    (f"{where}.with.{name}", "<option>", f"plugin {ref.use}: takes no options")
                )
    return out


def _option_problems(where: str, use: str, exc: ValidationError) -> list[tuple[str, str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        key = f"{where}.with.{loc}" if loc else f"{where}.with"
        if err["type"] == "extra_forbidden":
            expected = "unknown option"
            shown = _show(key, err["input"])
        elif err["type"] == "missing":
            expected, shown = "required option is missing", "nothing"
        else:
            expected = err["msg"].removeprefix("Value error, ")
            shown = _show(key, err.get("input"))
        out.append((key, shown, f"plugin {use}: {expected}"))
    return out


def instantiate(refs: tuple[Any, ...], base_dir: Path) -> list[LoadedPlugin]:
    """One instance per configured plugin, options validated (the config was checked
    already; this raises PluginLoadError or ValidationError only if it changed meanwhile)."""
    loaded = []
    for ref in refs:
        cls = find_plugin(ref.use)
        options = _validate(cls, dict(ref.with_), base_dir)
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
