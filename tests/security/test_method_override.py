"""Method overrides hidden in the query string or a form body: Rails, Laravel, Symfony and
Express method-override act on `_method=DELETE` as on a DELETE, so a POST the policy allows
would reach a handler the policy denies. The gateway refuses them; nothing reaches the app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.encryption.conftest import Store, egw, store_upstream  # noqa: F401 - fixtures
from tests.proxy.conftest import free_port, gateway_config, raw_request, start_gateway

POLICY = """rules:
  - name: no-delete
    match: {paths: ["/notes/**"], methods: [DELETE, PUT, PATCH]}
    access: deny
  - name: everything
    match: {paths: ["/**"]}
    access: public
"""


@pytest.fixture
async def recorded() -> AsyncIterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """A real upstream that records the method, target and exact body bytes it received."""
    seen: list[tuple[str, str, bytes]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path, await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


@pytest.fixture
async def gw(recorded, tmp_path: Path) -> AsyncIterator[tuple[int, list]]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "00-test.yaml").write_text(POLICY)
    config = gateway_config(recorded[0], tmp_path)
    runner = await start_gateway(config)
    yield config.listen_port, recorded[1]
    await runner.cleanup()


def form_post(target: str, body: bytes, *, ctype: str = "application/x-www-form-urlencoded"):
    return (
        f"POST {target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def refused(status: int, raw: bytes) -> None:
    assert status == 400, raw[-300:]
    assert json.loads(raw.partition(b"\r\n\r\n")[2]) == {
        "error": "bad_request",
        "reason": "method_override",
    }


async def test_the_policy_denies_a_real_delete(gw):
    port, seen = gw
    status, _ = await raw_request(
        port, b"DELETE /notes/1 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    )
    assert status == 403 and seen == []


@pytest.mark.parametrize(
    "body",
    [
        b"_method=DELETE",
        b"title=x&_method=DELETE",
        b"_METHOD=delete",
        b"_Method=+delete+",
        b"%5Fmethod=PUT",
        b"%5f%6Dethod=PUT",
        b"_method[]=PATCH",
        b"_method%5B%5D=PATCH",
        b"+_method=DELETE",
        b"a=1;_method=DELETE",  # Rack 2 splits on `;`
        b"_method=POST&_method=DELETE",  # the last copy wins in PHP and Rack
        b"_method=",  # not POST: fail closed
    ],
)
async def test_a_form_body_that_overrides_the_method_is_refused(gw, body):
    port, seen = gw
    status, raw = await raw_request(port, form_post("/notes/1", body))
    refused(status, raw)
    assert seen == []


async def test_a_form_content_type_with_parameters_is_still_scanned(gw):
    port, seen = gw
    ctype = "Application/X-WWW-Form-URLEncoded; charset=utf-8"
    status, raw = await raw_request(port, form_post("/notes/1", b"_method=DELETE", ctype=ctype))
    refused(status, raw)
    assert seen == []


async def test_a_chunked_form_body_that_overrides_the_method_is_refused(gw):
    port, seen = gw
    status, raw = await raw_request(
        port,
        b"POST /notes/1 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\ntitle=\r\n10\r\nx&_method=DELETE\r\n0\r\n\r\n",
    )
    refused(status, raw)
    assert seen == []


@pytest.mark.parametrize(
    "target", ["/notes/1?_method=DELETE", "/notes/1?a=1&_METHOD=put", "/notes/1?%5Fmethod=PATCH"]
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_query_string_that_overrides_the_method_is_refused(gw, target, method):
    port, seen = gw
    status, raw = await raw_request(
        port, f"{method} {target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".encode()
    )
    refused(status, raw)
    assert seen == []


@pytest.mark.parametrize(
    "body",
    [b"", b"_method=POST", b"_method=post&title=a+b%26c", b"title=%ZZ&methods=DELETE", b"x" * 5000],
)
async def test_a_form_without_an_override_is_forwarded_byte_identical(gw, body):
    port, seen = gw
    status, raw = await raw_request(port, form_post("/notes/1", body))
    assert status == 200, raw[-300:]
    assert seen == [("POST", "/notes/1", body)]


async def test_a_chunked_form_is_forwarded_whole_with_its_length(gw):
    port, seen = gw
    status, raw = await raw_request(
        port,
        b"POST /notes/1 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\ntitle=\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    assert status == 200, raw[-300:]
    assert seen == [("POST", "/notes/1", b"title=abc")]


async def test_other_content_types_and_methods_are_not_read(gw):
    """The scan is for urlencoded POSTs only: a JSON body or a PUT form streams as before."""
    port, seen = gw
    status, _ = await raw_request(
        port, form_post("/x", b'{"_method":"DELETE"}', ctype="application/json")
    )
    assert status == 200
    assert seen[-1] == ("POST", "/x", b'{"_method":"DELETE"}')


async def test_a_form_over_the_scan_bound_is_refused_not_streamed_unchecked(gw):
    port, seen = gw  # max_body is 1 MiB here: the bound is the smaller of the two
    body = b"a=" + b"x" * (1 << 20) + b"&_method=DELETE"
    status, raw = await raw_request(port, form_post("/notes/1", body))
    assert status == 413, raw[-300:]
    assert seen == []


async def test_a_compressed_form_is_refused(gw):
    """The app may inflate a gzip form the gateway cannot read: refused, not forwarded."""
    port, seen = gw
    body = b"\x1f\x8b garbage"
    request = form_post("/notes/1", body).replace(
        b"Connection: close\r\n", b"Connection: close\r\nContent-Encoding: gzip\r\n"
    )
    status, raw = await raw_request(port, request)
    assert status == 415, raw[-300:]
    assert seen == []


async def test_an_encrypting_form_rule_refuses_an_override_too(egw, store_upstream):  # noqa: F811
    async with egw.client() as s:
        await egw.login(s)
        cookie = "; ".join(f"{c.key}={c.value}" for c in s.cookie_jar)

    def post(body: bytes) -> bytes:
        return form_post("/form/1", body).replace(
            b"Connection: close\r\n", f"Connection: close\r\nCookie: {cookie}\r\n".encode()
        )

    status, raw = await raw_request(egw.config.listen_port, post(b"title=secret&_method=DELETE"))
    refused(status, raw)
    assert store_upstream.hits == []
    # The same request without the override is sealed and forwarded.
    status, raw = await raw_request(egw.config.listen_port, post(b"title=secret&_method=POST"))
    assert status < 400, raw[-300:]
    assert store_upstream.hits == ["POST /form/1"]
