"""Finding plugins and validating their options: by module path or by entry point (group
`gateway.plugins`), every problem named by plugin and key, `gateway check` exiting 1 and
`gateway run` refusing to start, secret-looking values never echoed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.config import ConfigError, parse_config
from gateway.startup.plugins import PluginLoadError, find_plugin

ROOT = Path(__file__).resolve().parents[2]


def gateway_cli(*argv: str, cwd: Path, extra_path: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, str(ROOT)) if p)
    env.pop("GATEWAY_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def config_with(tmp_path: Path, plugins: list[dict]):
    return parse_config(
        {"upstream": {"url": "http://127.0.0.1:9"}, "plugins": plugins}, base_dir=tmp_path
    )


BAD = [
    ({"use": "plugins.nope"}, "plugins.0.use", "no plugin named 'plugins.nope'"),
    (
        {"use": "plugins.ip_allowlist", "with": {"rules": {"admin": ["10.0.0.0/33"]}}},
        "plugins.0.with.rules",
        "plugin plugins.ip_allowlist: rule 'admin': '10.0.0.0/33' is not a CIDR",
    ),
    (
        {"use": "plugins.ip_allowlist", "with": {}},
        "plugins.0.with.rules",
        "plugin plugins.ip_allowlist: required option is missing",
    ),
    (
        {"use": "plugins.security_headers", "with": {"hsts_max_age": -1}},
        "plugins.0.with.hsts_max_age",
        "plugin plugins.security_headers:",
    ),
    (
        {"use": "plugins.security_headers", "with": {"frame_options": "ALLOWALL"}},
        "plugins.0.with.frame_options",
        "plugin plugins.security_headers:",
    ),
    (
        {"use": "plugins.api_keys", "with": {"colour": "blue"}},
        "plugins.0.with.colour",
        "plugin plugins.api_keys: unknown option",
    ),
    (
        {"use": "plugins.breached_passwords", "with": {"path": "no/such/folder"}},
        "plugins.0.with.path",
        "plugin plugins.breached_passwords: expected a folder",
    ),
    (
        {"use": "plugins.breached_passwords", "with": {}},
        "plugins.0.with",
        "plugin plugins.breached_passwords: expected `path`",
    ),
    (
        {"use": "plugins.breached_passwords", "with": {"api_url": "ftp://x/", "path": "."}},
        "plugins.0.with.api_url",
        "expected an http(s) URL",
    ),
    ({"use": "not a module name"}, "plugins.0.use", "should match pattern"),
    (
        {"use": "plugins.security_headers", "with": {"referrer_policy": "x\r\nSet-Cookie: a=b"}},
        "plugins.0.with.referrer_policy",
        "expected a header value without control characters",
    ),
    (
        {
            "use": "plugins.security_headers",
            "with": {"rules": {"r": {"content_security_policy": "a\nb"}}},
        },
        "plugins.0.with.rules.r.content_security_policy",
        "without control characters",
    ),
]


@pytest.mark.parametrize(("ref", "key", "expected"), BAD, ids=[b[1] + str(i) for i, b in
                                                              enumerate(BAD)])  # fmt: skip
def test_option_errors_name_the_plugin_and_the_key(tmp_path, ref, key, expected):
    with pytest.raises(ConfigError) as info:
        config_with(tmp_path, [ref])
    problems = [str(p) for p in info.value.problems]
    assert any(p.startswith(key + ":") and expected in p for p in problems), problems


def test_a_plugin_without_options_refuses_any(tmp_path):
    with pytest.raises(ConfigError) as info:
        config_with(tmp_path, [{"use": "tests.plugins.no_options_plugin", "with": {"x": 1}}])
    assert [str(p) for p in info.value.problems] == [
        "plugins.0.with.x: plugin tests.plugins.no_options_plugin: takes no options (got <option>)"
    ]


def test_secret_looking_option_values_are_not_echoed(tmp_path):
    ref = {"use": "plugins.api_keys", "with": {"api_token": "s3cr3t-value-xyz"}}
    with pytest.raises(ConfigError) as info:
        config_with(tmp_path, [ref])
    assert "s3cr3t-value-xyz" not in str(info.value)
    assert "plugins.0.with.api_token" in str(info.value)


def test_gateway_check_reports_every_plugin_problem_and_exits_1(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "a.yaml").write_text("rules: []\n")
    (tmp_path / "gateway.yaml").write_text(
        textwrap.dedent(
            """\
            upstream: {url: "http://127.0.0.1:9"}
            plugins:
              - use: plugins.ip_allowlist
                with: {rules: {admin: [banana]}}
              - use: plugins.security_headers
                with: {referer_policy: none}
              - use: plugins.nope
            """
        )
    )
    done = gateway_cli("-c", "gateway.yaml", "check", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "plugins.0.with.rules" in done.stderr and "plugins.ip_allowlist" in done.stderr
    assert "plugins.1.with.referer_policy" in done.stderr and "unknown option" in done.stderr
    assert "plugins.2.use" in done.stderr
    assert "invalid: 3 error(s)" in done.stderr
    assert "Traceback" not in done.stderr
    run = gateway_cli("run", "-c", "gateway.yaml", cwd=tmp_path)
    assert run.returncode == 1 and "plugins.0.with.rules" in run.stderr
    assert "listening" not in run.stderr


def make_distribution(root: Path, *, broken: bool = False) -> None:
    """A real installed distribution on a path entry: a module and a dist-info whose
    entry_points.txt registers it in the `gateway.plugins` group."""
    module = "acme_broken_plugin" if broken else "acme_gateway_plugin"  # fresh in sys.modules
    (root / f"{module}.py").write_text(
        textwrap.dedent(
            """\
            from pydantic import BaseModel, ConfigDict

            class Options(BaseModel):
                model_config = ConfigDict(extra="forbid")
                greeting: str

            class AcmePlugin:
                Options = Options

                def __init__(self, options):
                    self.greeting = options.greeting

                async def before_forward(self, ex, headers):
                    headers["X-Acme"] = self.greeting
            """
        )
        + ("raise ImportError('boom')\n" if broken else "")
    )
    info = root / "acme_gateway_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-gateway-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[gateway.plugins]\nacme = {module}:AcmePlugin\n")


def test_entry_point_plugins_are_found_by_name(tmp_path, monkeypatch):
    make_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = find_plugin("acme")
    assert cls.__name__ == "AcmePlugin"
    config = config_with(tmp_path, [{"use": "acme", "with": {"greeting": "hi"}}])
    assert config.plugins[0].use == "acme"
    with pytest.raises(ConfigError) as info:
        config_with(tmp_path, [{"use": "acme", "with": {}}])
    assert str(info.value.problems[0]) == (
        "plugins.0.with.greeting: plugin acme: required option is missing (got nothing)"
    )


def test_a_broken_entry_point_is_a_config_error_not_a_crash(tmp_path, monkeypatch):
    make_distribution(tmp_path, broken=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginLoadError, match="failed to load .ImportError."):
        find_plugin("acme")


def test_gateway_check_finds_an_entry_point_plugin_in_a_fresh_process(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "a.yaml").write_text("rules: []\n")
    (tmp_path / "gateway.yaml").write_text(
        'upstream: {url: "http://127.0.0.1:9"}\nplugins: [{use: acme, with: {greeting: hi}}]\n'
    )
    done = gateway_cli("check", "-c", "gateway.yaml", cwd=tmp_path, extra_path=str(site))
    assert done.returncode == 0, done.stderr
    done = gateway_cli("check", "-c", "gateway.yaml", cwd=tmp_path)  # not installed here
    assert done.returncode == 1 and "no plugin named 'acme'" in done.stderr


def test_a_whole_options_block_is_shown_by_its_key_names_only(tmp_path):
    ref = {"use": "plugins.breached_passwords", "with": {"min_count": 1, "timeout": "1s"}}
    with pytest.raises(ConfigError) as info:
        config_with(tmp_path, [ref])
    assert [str(p) for p in info.value.problems] == [
        "plugins.0.with: plugin plugins.breached_passwords: expected `path` (offline range "
        "files) or `api_url` (or both) (got {min_count: ..., timeout: ...})"
    ]
