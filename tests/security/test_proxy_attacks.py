"""Proxy-level attacks from a raw socket: request bodies must reach the upstream exactly as the
client framed them, or not at all."""

from __future__ import annotations

import gzip
import json

from tests.proxy.conftest import gateway, raw_request  # noqa: F401 - fixture


async def test_a_compressed_upload_reaches_the_upstream_as_sent(gateway, upstream):  # noqa: F811
    """Attack surface: the gateway's own HTTP server inflated `Content-Encoding: gzip` bodies
    and forwarded the inflated bytes still labelled gzip, under the compressed length: the
    upstream got a truncated, mislabelled body (and answered 500)."""
    inner = b"field=" + b"v" * 5000
    body = gzip.compress(inner)
    status, raw = await raw_request(
        gateway.port,
        b"POST /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Encoding: gzip\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body,
    )
    assert status == 200, raw[-300:]
    seen = json.loads(raw.partition(b"\r\n\r\n")[2])
    # The echo upstream (aiohttp) inflates what it gets: the original bytes, whole.
    assert seen["body_len"] == len(inner)
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["content-encoding"] == "gzip"
    assert headers["content-length"] == str(len(body))
