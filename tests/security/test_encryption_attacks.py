"""Encryption bypass attempts: bodies the gateway reads one way and a real upstream framework
(aiohttp's own request parsers) reads another, so that a designated field would reach the app
in plaintext. The upstream here parses every request the way an aiohttp app does and records
what it read; the plaintext must never be among it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.auth.conftest import AuthGw, auth_config, launch
from tests.encryption.conftest import write_setup
from tests.proxy.conftest import raw_request
from tests.support.upstream import serve

SECRET = "the plaintext that must not arrive"


@pytest.fixture
async def parsed() -> AsyncIterator[tuple[str, list[dict]]]:
    """An upstream that reads forms, multipart and JSON as aiohttp apps do."""
    seen: list[dict] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        entry: dict = {"query": dict(request.query), "ctype": request.content_type}
        if request.content_type == "application/json":
            try:
                entry["json"] = await request.json()
            except ValueError:
                entry["json"] = None
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            entry["form"] = {k: v if isinstance(v, str) else "<file>" for k, v in form.items()}
        seen.append(entry)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner, url = await serve(app)
    yield url, seen
    await runner.cleanup()


@pytest.fixture
async def pgw(parsed, tmp_path: Path) -> AsyncIterator[tuple[AuthGw, list[dict]]]:
    url, seen = parsed
    config = auth_config(url, tmp_path, **write_setup(tmp_path))
    agw = await launch(config)
    await agw.add_user("alice")
    yield agw, seen
    await agw.runner.cleanup()


def leaked(seen: list[dict]) -> bool:
    return SECRET in json.dumps(seen)


async def post(agw: AuthGw, path: str, body: bytes, headers: dict[str, str]) -> int:
    async with agw.client() as s:
        await agw.login(s, "alice")
        async with s.post(agw.url + path, data=body, headers=headers) as r:
            await r.read()
            return r.status


def multipart(name: str) -> tuple[bytes, dict[str, str]]:
    body = (
        f'--b0undary\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{SECRET}\r\n'
        "--b0undary--\r\n"
    ).encode()
    return body, {"Content-Type": "multipart/form-data; boundary=b0undary"}


@pytest.mark.parametrize("name", ["/title", "//title"])
async def test_multipart_name_with_leading_slash_is_not_a_way_around(pgw, name):
    """Attack: aiohttp strips leading `/` and `\\` from a quoted part name, so the app reads
    `name="/title"` as `title` while the gateway saw another field and copied it."""
    agw, seen = pgw
    status = await post(agw, "/upload/x", *multipart(name))
    assert not leaked(seen), seen
    assert status == 400


@pytest.mark.parametrize(
    "path, body, ctype",
    [
        # UTF-7: `+AG4-` is `n`, `+AHQ-` is `t`; the gateway reads other names than the app.
        ("/json/x", b'{"+AG4-ote": "' + SECRET.encode() + b'"}', "application/json; charset=utf-7"),
        ("/form/x", b"+AHQ-itle=" + SECRET.replace(" ", "+").encode(), "utf-7"),
        ("/form/x", f"title={SECRET}".encode("utf-16-le"), "utf-16-le"),
        ("/form/x", f"title={SECRET}".encode("utf-16-le"), '"UTF-16-LE"'),
    ],
)
async def test_a_charset_parameter_is_not_a_way_around(pgw, path, body, ctype):
    """Attack: aiohttp decodes form and JSON bodies with the charset the client names, so a
    body in another charset hides the field name from the gateway but not from the app."""
    agw, seen = pgw
    if not ctype.startswith("application/"):
        ctype = f"application/x-www-form-urlencoded; charset={ctype}"
    status = await post(agw, path, body, {"Content-Type": ctype})
    assert not leaked(seen), seen
    assert status == 415


async def test_utf8_charset_is_still_encrypted(pgw):
    agw, seen = pgw
    ctype = "application/json; charset=UTF-8"
    body = json.dumps({"note": SECRET}).encode()
    assert await post(agw, "/json/x", body, {"Content-Type": ctype}) == 204
    assert seen[-1]["json"]["note"].startswith("gwe1.") and not leaked(seen)


async def raw_post(agw: AuthGw, path: str, headers: bytes, body: bytes) -> int:
    """A signed-in POST written byte for byte (no client merges duplicate headers)."""
    async with agw.client() as s:
        await agw.login(s, "alice")
        cookie = f"{agw.auth.sessions.cookie.name}={agw.cookie(s)}".encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n".encode()
        + b"Cookie: "
        + cookie
        + b"\r\n"
        + headers
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    status, _ = await raw_request(agw.config.listen_port, request)
    return status


@pytest.mark.parametrize(
    "headers, body",
    [
        # The gateway parsed the first type (a form without a `title`); a last-wins app
        # (gunicorn's CONTENT_TYPE, for one) reads JSON with `title` in plaintext.
        (
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Type: application/json\r\n",
            json.dumps({"title": SECRET}).encode(),
        ),
        # The gateway saw `identity`; an app that honours the last coding inflates the body.
        (
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Encoding: identity\r\nContent-Encoding: gzip\r\n",
            __import__("gzip").compress(f"title={SECRET}".encode()),
        ),
    ],
)
async def test_duplicate_content_type_or_encoding_is_refused(pgw, headers, body):
    agw, seen = pgw
    status = await raw_post(agw, "/form/x", headers, body)
    assert status in (400, 415)
    assert seen == []


async def test_a_compressed_body_on_a_whole_body_rule_is_refused(pgw):
    """The gateway relays bodies as sent (no inflating server): an encoded body cannot be
    sealed as what it claims to be, so it is refused like on the field rules."""
    agw, seen = pgw
    body = __import__("gzip").compress(SECRET.encode())
    headers = {"Content-Type": "text/plain", "Content-Encoding": "gzip"}
    assert await post(agw, "/blob/x", body, headers) == 415
    assert seen == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"note": "\\ud800"}',
        b'{"note": "ok", "other": "\\udfff"}',
        b'{"note": "ok", "n": 1e999}',
    ],
    ids=["surrogate-sealed", "surrogate-elsewhere", "overflowing-number"],
)
async def test_json_the_gateway_cannot_reencode_is_400_and_reaches_nobody(pgw, body):
    agw, seen = pgw
    assert await post(agw, "/json/x", body, {"Content-Type": "application/json"}) == 400
    assert seen == []


SHADOWS = ["title[]", "title[0]", "title[x][y]", " title", "[title]", "title]"]


@pytest.mark.parametrize("name", SHADOWS)
async def test_a_form_name_php_or_rack_reads_as_the_field_is_refused(pgw, name):
    """Attack: PHP and Rack (Rails) read `title[]` and `title[x]` as the field `title` (an
    array or a hash), PHP also turns ` ` and `.` into `_` and drops leading spaces, Rack
    drops leading brackets: the gateway saw another name and copied the value in plaintext."""
    agw, seen = pgw
    from urllib.parse import quote_plus

    body = f"{quote_plus(name)}={quote_plus(SECRET)}".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert await post(agw, "/form/x", body, headers) == 400
    assert seen == []


@pytest.mark.parametrize("name", SHADOWS)
async def test_a_multipart_name_php_or_rack_reads_as_the_field_is_refused(pgw, name):
    agw, seen = pgw
    assert await post(agw, "/upload/x", *multipart(name)) == 400
    assert seen == []


async def test_names_that_only_look_alike_still_pass(pgw):
    agw, seen = pgw
    body = f"title=a&titles=b&subtitle=c&tit_le=d&x[title]=e&note={SECRET}".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert await post(agw, "/form/x", body, headers) == 204
    form = seen[-1]["form"]
    assert form["title"].startswith("gwe1.") and form["titles"] == "b" and form["x[title]"] == "e"


@pytest.mark.parametrize(
    "name, designated, shadowed",
    [
        ("my.title", "my_title", True),  # PHP: `.` and ` ` become `_`
        ("my title", "my_title", True),
        ("note[title][]", "note[title]", True),
        ("note.x[title]", "note_x[title]", True),
        ("note[title]", "note[title]", False),  # the designated name itself is sealed
        ("note[other]", "note[title]", False),
        ("my_title", "my.title", True),  # PHP reads the designated my.title as my_title
    ],
)
def test_shadowing_follows_php_and_rack_name_rules(name, designated, shadowed):
    from gateway.crypto.fields import shadows

    assert shadows(name, [designated]) is shadowed


async def test_a_raw_semicolon_in_a_form_body_is_refused(pgw):
    """Attack: `x=1;title=secret`: the gateway reads one field x, while Rack 2 and Python
    before 3.9.2 (parse_qs) also split on `;` and read title in plaintext. Browsers always
    percent-encode `;` in form bodies."""
    agw, seen = pgw
    body = f"x=1;title={SECRET}".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert await post(agw, "/form/x", body, headers) == 400
    assert seen == []
