"""The house stays as docs/architecture.md draws it: no import circles, and each package imports
only the packages below it. Read from the source with `ast`, so a new arrow that runs back up
fails here before it can tie two rooms together."""

from __future__ import annotations

import ast

import pytest

from tests.layout.imports import circles, closure, external_imports, graph, modules

# Each room and the rooms it may import (besides itself). A module's room is the longest
# name below that it starts with; the foundation modules are rooms of one module each.
ALLOWED: dict[str, set[str]] = {
    "gateway": set(),  # the package face: the version only
    "gateway.clock": set(),
    "gateway.logs": set(),
    "gateway.metrics": {"gateway"},
    "gateway.config": set(),
    "gateway.http.canonical": set(),
    "gateway.http": {"gateway.http.canonical"},
    "gateway.store": {"gateway.clock"},
    "gateway.crypto": {"gateway.clock", "gateway.store"},
    "gateway.policy": {"gateway.http.canonical"},
}
FOUNDATION = {"gateway", "gateway.clock", "gateway.logs", "gateway.metrics", "gateway.config"}
HTTP = {"gateway.http", "gateway.http.canonical"}
LIBRARIES = FOUNDATION | HTTP | {"gateway.store", "gateway.crypto", "gateway.policy"}
ALLOWED |= {
    "gateway.auth": FOUNDATION | HTTP | {"gateway.store", "gateway.crypto"},
    "gateway.hooks": FOUNDATION | HTTP | {"gateway.store"},
}
ALLOWED["gateway.edge"] = LIBRARIES | {"gateway.auth", "gateway.hooks"}
ALLOWED["gateway.portal"] = ALLOWED["gateway.edge"] | {"gateway.edge"}
ALLOWED["gateway.startup"] = ALLOWED["gateway.portal"] | {"gateway.portal"}
ALLOWED["gateway.cli"] = ALLOWED["gateway.startup"] | {"gateway.startup", "gateway.cli.common"}
ALLOWED["gateway.demo"] = {"gateway.config"}
# Plugins use what a third-party plugin may: the request vocabulary, the hooks, the
# libraries, the accounts' audit writer, and the CLI's shared helpers for their own verbs.
ALLOWED["plugins"] = LIBRARIES | {"gateway.auth", "gateway.hooks", "gateway.cli.common"}
ALLOWED["gateway.cli.common"] = {"gateway.config"}
WEB = ("aiohttp.web",)
WEB_FREE = ("gateway.store", "gateway.crypto", "gateway.policy", "gateway.config")


def room_of(module: str) -> str:
    best = ""
    for room in ALLOWED:
        if (module == room or module.startswith(room + ".")) and len(room) > len(best):
            best = room
    assert best, f"{module} is in no room of the layout: add it to ALLOWED and the docs"
    return best


def test_no_module_imports_itself_back_through_others():
    assert circles(graph()) == []


def test_every_module_belongs_to_a_room():
    for name in modules():
        room_of(name)


def _arrows():
    for importer, imported in sorted(graph().items()):
        for target in sorted(imported):
            yield importer, target


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_each_room_imports_only_the_rooms_below_it(room):
    wrong = []
    for importer, target in _arrows():
        if room_of(importer) != room:
            continue
        to = room_of(target)
        if to != room and to not in ALLOWED[room]:
            wrong.append(f"{importer} -> {target} ({to})")
    assert wrong == [], f"{room} may import only {sorted(ALLOWED[room])}"


@pytest.mark.parametrize("package", WEB_FREE)
def test_libraries_never_reach_aiohttp_web(package):
    mods = modules()
    edges = graph()
    own = [m for m in mods if m == package or m.startswith(package + ".")]
    assert own, package
    reached = set(own)
    for m in own:
        reached |= closure(m, edges)
    offenders = {
        m: sorted(n for n in external_imports(mods[m]) if n.startswith(WEB))
        for m in sorted(reached)
    }
    assert {m: n for m, n in offenders.items() if n} == {}


def test_every_package_says_what_it_owns_and_may_import():
    for name, path in modules().items():
        if path.name != "__init__.py" or name in ("gateway", "plugins"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        assert "May import" in doc, f"{path}: the docstring says what it owns and may import"


def test_the_check_sees_a_circle_when_there_is_one():
    # The check itself can fail: a two-module ring and a three-module ring are found.
    edges = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert circles(edges) == [["a", "b"], ["c", "d", "e"]]
