"""The docs' "writing a plugin" example is a real module, identical to the docs, loaded
through the config and working end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config import ConfigError
from tests.proxy.conftest import gateway_config

ROOT = Path(__file__).resolve().parents[2]
USE = "tests.plugins.example_plugin"


def test_the_docs_show_the_module_verbatim():
    docs = (ROOT / "docs" / "plugins.md").read_text()
    block = re.search(
        r"<!-- example:start -->\n```python\n(.*?)```\n<!-- example:end -->", docs, re.S
    )
    assert block is not None
    source = (ROOT / "tests" / "plugins" / "example_plugin.py").read_text()
    assert block.group(1) == source
    assert len(source.splitlines()) <= 35


async def test_the_example_closes_its_rules_and_stamps_the_rest(plugin_gateway, recorder):
    gw = await plugin_gateway([{"use": USE, "with": {"rules": ["embed"], "deployment": "green"}}])
    async with gw.client() as s:
        async with s.get(gw.url + "/embed/x") as r:
            assert r.status == 503 and r.headers["Retry-After"] == "600"
            assert await r.json() == {"error": "maintenance"}
        async with s.get(gw.url + "/open/x", headers={"X-Deployment": "forged"}) as r:
            assert r.status == 200
    assert len(recorder.seen) == 1
    assert recorder.seen[0]["headers"]["X-Deployment"] == "green"


def test_the_example_validates_its_options(tmp_path):
    with pytest.raises(ConfigError) as info:
        gateway_config(
            "http://127.0.0.1:9", tmp_path, plugins=[{"use": USE, "with": {"rules": []}}]
        )
    assert str(info.value.problems[0]).startswith(f"plugins.0.with.rules: plugin {USE}:")
