"""API key attacks from a raw socket: bytes no client library would send in Authorization."""

from __future__ import annotations

import json

import pytest

from tests.plugins.conftest import plugin_gateway, recorder  # noqa: F401 - fixtures
from tests.proxy.conftest import raw_request


@pytest.mark.parametrize(
    "value",
    [b"Bearer \xff\xfe", b"Bearer gwk_0123456789abcdef_\xc3\xa9", b"bearer \x80"],
    ids=["latin1", "utf8-in-key", "lowercase-scheme"],
)
async def test_a_bearer_token_that_is_not_ascii_is_401_not_500(
    plugin_gateway,  # noqa: F811
    recorder,  # noqa: F811
    value,
):
    gw = await plugin_gateway([{"use": "plugins.api_keys"}])
    port = int(gw.url.rsplit(":", 1)[1])
    status, raw = await raw_request(
        port,
        b"GET /private/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nAuthorization: "
        + value
        + b"\r\n\r\n",
    )
    assert status == 401, raw[-200:]
    assert json.loads(raw.partition(b"\r\n\r\n")[2]) == {"error": "invalid_api_key"}
    assert recorder.seen == []
