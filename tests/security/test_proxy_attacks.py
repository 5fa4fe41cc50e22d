"""Proxy-level attacks from a raw socket: request bodies must reach the upstream exactly as the
client framed them, or not at all."""

from __future__ import annotations

import gzip
import json

import pytest

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


@pytest.mark.parametrize(
    "name",
    [
        "X-Original-URL",
        "X-Rewrite-URL",
        "x_original_url",
        "X-Override-URL",
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
        "x_http_method_override",
    ],
)
async def test_path_and_method_override_headers_never_reach_the_upstream(gateway, name):  # noqa: F811
    """Attack: the policy matched GET /x, but Symfony, Laminas, IIS URL Rewrite (X-Original-URL,
    X-Rewrite-URL) or Rack and Express method-override (X-HTTP-Method-Override) make the app
    act on another path or method than the one matched, e.g. a `deny` or `mfa` one."""
    request = f"GET /x HTTP/1.1\r\nHost: gw\r\n{name}: /admin/delete\r\nConnection: close\r\n\r\n"
    status, raw = await raw_request(gateway.port, request.encode())
    assert status == 200
    seen = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert "/admin/delete" not in json.dumps(seen["headers"]), seen["headers"]


@pytest.mark.parametrize(
    "name",
    [
        "Client-IP",  # PHP's classic $_SERVER['HTTP_CLIENT_IP'] ?? X-Forwarded-For ?? ...
        "X-Client-IP",
        "True-Client-IP",
        "X-Cluster-Client-IP",
        "CF-Connecting-IP",
        "Fastly-Client-IP",
        "X-Originating-IP",
        "X-Remote-IP",
        "X-Remote-Addr",
        "X-Forwarded",
        "Forwarded-For",
        "X-Forwarded-Ssl",
        "X-Forwarded-Scheme",
        "X-Forwarded-Prefix",
        "X-Forwarded-Uri",
        "X_Forwarded_Server",
    ],
)
async def test_client_claims_of_address_scheme_or_prefix_never_reach_the_upstream(
    gateway,  # noqa: F811
    name,
):
    """Attack: an untrusted client claims another address (for the app's IP allowlist, rate
    limit or audit) or scheme/prefix (for the links and cookies it builds) in a header the
    gateway does not own; only the gateway's own forwarding headers may say that."""
    request = f"GET /x HTTP/1.1\r\nHost: gw\r\n{name}: 10.6.6.6\r\nConnection: close\r\n\r\n"
    status, raw = await raw_request(gateway.port, request.encode())
    assert status == 200
    seen = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert "10.6.6.6" not in json.dumps(seen["headers"]), seen["headers"]


async def test_absolute_form_target_naming_another_host_is_400(gateway, upstream):  # noqa: F811
    """Attack: `GET http://other.example/admin` matched against one host and path while the
    upstream reads another: refused before anything is matched or forwarded."""
    status, _ = await raw_request(
        gateway.port,
        b"GET http://other.example/admin HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    )
    assert status == 400
    assert upstream.seen == []


async def test_identity_header_in_a_chunked_trailer_never_reaches_the_upstream(
    gateway,  # noqa: F811
    upstream,
):
    status, _ = await raw_request(
        gateway.port,
        b"POST /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n3\r\nabc\r\n0\r\nX-Forwarded-User: admin\r\nX-Original-URL: /admin\r\n\r\n",
    )
    assert status == 200
    (seen,) = upstream.seen
    assert seen["body_len"] == 3
    assert "admin" not in json.dumps(seen["headers"])
