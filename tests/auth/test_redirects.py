"""`next` after login: a table of open-redirect attempts, each must land on a same-origin path."""

from __future__ import annotations

from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.auth.redirects import safe_next
from tests.auth.conftest import PASSWORD
from tests.auth.mfa_support import code, enroll, login, write_policy

REFUSED = [
    "//evil.example",
    "///evil.example",
    "////evil.example/x",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "/%2f%2fevil.example",
    "/%2F/evil.example",
    "%2f%2fevil.example",
    "/%5cevil.example",
    "/%255cevil.example",
    "/%252f%252fevil.example",
    "/%09/evil.example",
    "/\t/evil.example",
    "/\r\nSet-Cookie: x=1",
    "/%0d%0aSet-Cookie:%20x=1",
    "/%00",
    "/\x7f",
    "/ /evil.example",
    "/%E2%80%AE/evil",
    "/%ff%fe",
    "",
    " /notes",
    "/" + "a" * 3000,
    "/.gateway/login?next=//evil.example",
]
ACCEPTED = [
    "/",
    "/notes/1",
    "/notes/1?tab=2&x=y",
    "/a/b#frag",
    "/search?q=http://example.org",
    "/caf%C3%A9",
    "/a%20b",
]


@pytest.mark.parametrize("value", REFUSED)
def test_unsafe_next_falls_back_to_root(value):
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", ACCEPTED)
def test_same_origin_path_is_kept(value):
    assert safe_next(value) == value


@pytest.mark.parametrize("value", ["//evil.example", "/\\evil.example", "/%2f%2fevil.example"])
async def test_login_form_never_redirects_off_site(agw, value):
    await agw.add_user()
    async with agw.client() as s:
        async with s.get(agw.url + "/.gateway/login", params={"next": value}) as r:
            html = await r.text()
        token = html.split('name="csrf_token" value="')[1].split('"')[0]
        form = {"csrf_token": token, "next": value, "username": "alice", "password": PASSWORD}
        async with s.post(agw.url + "/.gateway/login", data=form, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/"


# -- `next` keeps the whole target, query included --------------------------------------------

TARGET = "/app/x?a=1&b=2&c=x%26y"  # an encoded `&` must stay one value


def hidden(html: str, name: str) -> str:
    return unescape(html.split(f'name="{name}" value="')[1].split('"')[0])


def next_of(location: str) -> list[str]:
    return parse_qs(urlsplit(location).query).get("next", [])


async def test_login_redirect_round_trips_every_query_parameter(make_gateway, tmp_path, upstream):
    write_policy(tmp_path)
    agw = await make_gateway()
    await agw.add_user()
    async with agw.client() as s:
        async with s.get(agw.url + TARGET, allow_redirects=False) as r:
            assert r.status == 302
            location = r.headers["Location"]
        assert location.startswith("/.gateway/login?next=")
        assert next_of(location) == [TARGET]
        async with s.get(agw.url + location) as r:
            html = await r.text()
        assert hidden(html, "next") == TARGET
        form = {
            "csrf_token": hidden(html, "csrf_token"),
            "next": hidden(html, "next"),
            "username": "alice",
            "password": PASSWORD,
        }
        async with s.post(agw.url + "/.gateway/login", data=form, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == TARGET
        async with s.get(agw.url + TARGET) as r:
            assert r.status == 200
            assert (await r.json())["raw_path"] == TARGET


async def test_mfa_step_up_redirect_round_trips_every_query_parameter(
    make_gateway, tmp_path, upstream
):
    write_policy(tmp_path)
    agw = await make_gateway()
    await agw.add_user()
    target = TARGET.replace("/app/", "/admin/")
    async with agw.client() as s:
        await login(agw, s)
        secret, _ = await enroll(agw, s)
    async with agw.client() as s:
        assert await login(agw, s) == {"status": "authenticated"}  # one factor, enforce: policy
        async with s.get(agw.url + target, allow_redirects=False) as r:
            assert r.status == 302
            location = r.headers["Location"]
        assert location.startswith("/.gateway/mfa?next=") and next_of(location) == [target]
        async with s.get(agw.url + location) as r:
            html = await r.text()
        assert hidden(html, "next") == target
        form = {"csrf_token": hidden(html, "csrf_token"), "next": target, "code": code(agw, secret)}
        async with s.post(agw.url + "/.gateway/mfa", data=form, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == target
