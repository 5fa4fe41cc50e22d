"""How the `gateway` command reads its arguments (DESIGN.md sections 7 and 11): `-c FILE` before
or after every verb, in every spelling argparse accepts (plugin verbs included), and usage
errors exit 1, never 2 (2 means missing or malformed key material)."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from gateway.cli import _parser, main
from tests.config.test_config import cli

NO_CONFIG = "/nonexistent/gateway.yaml"


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(words of the verb, filler positionals) for every runnable verb of the parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        fill = [
            (a.choices and next(iter(a.choices))) or "x"
            for a in parser._actions
            if not a.option_strings and a.nargs in (None, 1)
        ]
        yield path, tuple(fill)
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, (*path, name))


VERBS = sorted(_leaves(_parser(["-c", NO_CONFIG])))


def test_the_verb_list_is_the_contracts():
    words = {path for path, _ in VERBS}
    for verb in [("run",), ("check",), ("explain",), ("keys", "generate"), ("keys", "status"),
                 ("keys", "rewrap"), ("keys", "rotate"), ("users", "add"), ("users", "delete"),
                 ("sessions", "list"), ("sessions", "revoke")]:  # fmt: skip
        assert verb in words


@pytest.mark.parametrize(("path", "fill"), VERBS, ids=[" ".join(p) for p, _ in VERBS])
def test_config_option_works_before_and_after_every_verb(path, fill):
    parser = _parser(["-c", NO_CONFIG])
    before = parser.parse_args(["-c", "before.yaml", *path, *fill])
    after = parser.parse_args([*path, *fill, "-c", "after.yaml"])
    assert before.config == "before.yaml" and after.config == "after.yaml"
    if len(path) > 1:  # between a verb and its action as well: `keys -c F status`
        middle = parser.parse_args([path[0], "--config", "mid.yaml", *path[1:], *fill])
        assert middle.config == "mid.yaml"


@pytest.fixture
def store_config(tmp_path: Path) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(
        "upstream: {url: 'http://127.0.0.1:9'}\n"
        "store: {url: 'sqlite:///gw.db'}\n"
        "keys: {active: a, kek: {a: 'env:GW_TEST_ARGS_KEK'}}\n"
        "plugins: [{use: plugins.api_keys}]\n"
    )
    return path


def test_keys_verbs_take_the_config_between_and_after(store_config, monkeypatch, capsys):
    monkeypatch.setenv("GW_TEST_ARGS_KEK", "A" * 43 + "=")
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    assert main(["keys", "-c", str(store_config), "status"]) == 0
    assert "data keys: 0" in capsys.readouterr().out
    assert main(["keys", "status", "-c", str(store_config)]) == 0
    assert main(["keys", "generate", "-c", NO_CONFIG]) == 0
    assert len(capsys.readouterr().out.split("\n")[-2]) == 44  # a base64 KEK, config ignored


@pytest.mark.parametrize(
    "spelling",
    [
        ("-c", "{f}", "apikeys", "list"),
        ("-c{f}", "apikeys", "list"),
        ("--config={f}", "apikeys", "list"),
        ("--conf", "{f}", "apikeys", "list"),
        ("apikeys", "list", "-c{f}"),
        ("apikeys", "-c{f}", "list"),
        ("apikeys", "list", "--config={f}"),
    ],
)
def test_plugin_verbs_are_found_with_every_config_spelling(spelling, store_config, monkeypatch):
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    monkeypatch.chdir(store_config.parent.parent)  # no gateway.yaml to fall back on
    argv = [word.format(f=store_config) for word in spelling]
    assert main(argv) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["nosuchverb"],
        ["keys", "rotate"],
        ["run", "--workers", "many"],
        ["check", "--bogus"],
        ["-c"],
        [],
    ],
)
def test_usage_errors_exit_1_with_the_usage_on_stderr(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(["-c", NO_CONFIG, *argv] if argv != ["-c"] else argv)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("usage: gateway") and "error:" in err


def test_usage_error_exit_code_of_the_real_command(tmp_path):
    done: subprocess.CompletedProcess = cli("keys", "nosuch", cwd=tmp_path)
    assert done.returncode == 1 and "usage: gateway keys" in done.stderr
    assert cli("--help", cwd=tmp_path).returncode == 0


def test_a_plugin_verb_without_its_plugin_says_how_to_enable_it(tmp_path):
    conf = tmp_path / "gateway.yaml"
    conf.write_text("upstream: {url: 'http://127.0.0.1:9'}\nstore: {url: 'sqlite:///gw.db'}\n")
    done = cli("apikeys", "list", "-c", str(conf))
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "gateway: error: 'apikeys' comes with the plugins.api_keys plugin, which this config does"
        " not enable: add `- use: plugins.api_keys` under `plugins:` in gateway.yaml"
        " (docs/plugins.md)"
    )
    # Another unknown verb keeps argparse's own message.
    other = cli("frobnicate", "-c", str(conf))
    assert other.returncode == 1 and "invalid choice: 'frobnicate'" in other.stderr
