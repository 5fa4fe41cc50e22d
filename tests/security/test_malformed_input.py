"""Malformed input an attacker sends without signing in (or with a session): every answer is
a 4xx JSON error, never a 500 (DESIGN.md: bad input -> 4xx JSON error)."""

from __future__ import annotations

import pytest

from tests.auth.conftest import PASSWORD
from tests.auth.mfa_support import enroll, login, write_policy

DEEP = b"[" * 100_000
SURROGATE = "\\ud800"  # a lone surrogate: valid JSON syntax, not a Unicode string


async def post_json(s, url: str, body: bytes) -> tuple[int, dict]:
    async with s.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b'{"username": ' + DEEP + b"}",
        f'{{"username": "{SURROGATE}", "password": "x"}}'.encode(),
        f'{{"username": "alice", "password": "{SURROGATE}"}}'.encode(),
        f'{{"username": "nobody", "password": "x{SURROGATE}"}}'.encode(),
    ],
    ids=["deep", "deep-value", "surrogate-name", "surrogate-password", "unknown-surrogate"],
)
async def test_login_json_that_python_cannot_handle_is_400(make_gateway, body):
    agw = await make_gateway()
    await agw.add_user()
    async with agw.client() as s:
        status, answer = await post_json(s, agw.url + "/.gateway/login", body)
    assert (status, answer) == (400, {"error": "bad_request"})


async def test_signed_in_endpoints_refuse_unencodable_json_with_400(make_gateway, tmp_path):
    write_policy(tmp_path)
    agw = await make_gateway()
    await agw.add_user()
    async with agw.client() as s:
        await login(agw, s)
        await enroll(agw, s)
        for path, body in [
            ("/.gateway/mfa", DEEP),
            ("/.gateway/mfa/disable", f'{{"password": "{SURROGATE}", "code": "1"}}'),
            ("/.gateway/password", f'{{"current_password": "{SURROGATE}", "new_password": "x"}}'),
            (
                "/.gateway/password",
                f'{{"current_password": "{PASSWORD}", "new_password": "{SURROGATE * 20}"}}',
            ),
        ]:
            data = body if isinstance(body, bytes) else body.encode()
            status, answer = await post_json(s, agw.url + path, data)
            assert (status, answer) == (400, {"error": "bad_request"}), path
        assert await agw.auth.mfa.enabled("alice")


@pytest.mark.parametrize(
    "body, ctype",
    [
        (b"username=alice&password=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"username=alice&password=x", "application/x-www-form-urlencoded; charset=bogus"),
        (
            b'--b\r\nContent-Disposition: form-data; name="username"\r\n\r\n\xff\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
        (b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nx\r\n', "multipart/form-data"),
        (b"garbage", "multipart/form-data; boundary=b"),
    ],
    ids=["not-utf8", "bogus-charset", "multipart-not-utf8", "no-boundary", "boundary-missing"],
)
async def test_login_form_that_cannot_be_parsed_is_400(make_gateway, body, ctype):
    agw = await make_gateway()
    await agw.add_user()
    async with agw.client() as s:
        async with s.post(
            agw.url + "/.gateway/login", data=body, headers={"Content-Type": ctype}
        ) as r:
            assert (r.status, await r.json()) == (400, {"error": "bad_request"})
