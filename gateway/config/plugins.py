"""Finding plugins by name and validating their `with:` options (config load time).

`use: NAME` is looked up first among the entry points of group `gateway.plugins` (third-party
packages), then imported as a module path (`plugins.security_headers` is a first-party one).
The entry point or module gives a class (a module's `Plugin` attribute). Its `Options` pydantic
model validates `with:`; a class without one takes no options. Every problem names the plugin
and the key. Values are never echoed for keys that look secret. Starting the plugins is
`gateway.startup.plugins`'s job; nothing here runs a plugin's code beyond importing it.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.config.shown import shown_value

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginLoadError",
    "find_plugin",
    "problems_of",
    "validate_options",
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


def validate_options(cls: type, options: dict[str, Any], base_dir: Path) -> BaseModel | None:
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
            validate_options(cls, dict(ref.with_), base_dir)
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
