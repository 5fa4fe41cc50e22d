"""Designated request fields become tokens; everything else stays byte for byte; anything that
does not parse is refused (FieldError -> 400) rather than forwarded in plaintext."""

from __future__ import annotations

import json
import os

import pytest

from gateway.crypto.errors import FieldError
from gateway.crypto.fields import compile_json_path, encrypt_form_fields, encrypt_json_fields
from gateway.crypto.token import TOKEN_RE, open_field, seal_field

KEY = os.urandom(32)
SCOPE = "user:alice"


def seal(plaintext: bytes) -> str:
    return seal_field(KEY, SCOPE, 1, plaintext)


def opened(token: str) -> bytes:
    return open_field(KEY, SCOPE, 1, token)


def test_form_fields_are_sealed_and_the_rest_kept_verbatim():
    body = b"title=Hello+World%21&keep=a%20b+c&body=%3Cscript%3E&empty=&flag"
    out = encrypt_form_fields(body, ["title", "body", "empty"], seal)
    pairs = [p.split(b"=", 1) for p in out.split(b"&")]
    assert pairs[1] == [b"keep", b"a%20b+c"] and pairs[4] == [b"flag"]
    assert opened(pairs[0][1].decode()) == b"Hello World!"
    assert opened(pairs[2][1].decode()) == b"<script>"
    assert opened(pairs[3][1].decode()) == b""
    assert b"Hello" not in out and b"script" not in out


def test_repeated_form_field_is_sealed_every_time():
    out = encrypt_form_fields(b"tag=a&tag=b", ["tag"], seal)
    values = [p.split(b"=", 1)[1].decode() for p in out.split(b"&")]
    assert [opened(v) for v in values] == [b"a", b"b"]


def test_a_planted_token_is_sealed_again_not_passed_through():
    foreign = seal_field(os.urandom(32), "user:bob", 1, b"bob's secret")
    out = encrypt_form_fields(f"note={foreign}".encode(), ["note"], seal)
    token = out.split(b"=", 1)[1].decode()
    assert token != foreign and opened(token) == foreign.encode()
    doc = encrypt_json_fields(json.dumps({"n": foreign}).encode(), ["$.n"], seal)
    assert opened(json.loads(doc)["n"]) == foreign.encode()


@pytest.mark.parametrize("body", [b"a=%zz", b"title=%4", b"%ff%fe=1"])
def test_malformed_form_body_is_refused(body):
    with pytest.raises(FieldError):
        encrypt_form_fields(body, ["title"], seal)


def test_json_paths_select_nested_values_lists_and_indexes():
    doc = {
        "a": {"b": "secret-b", "c": "plain"},
        "items": [{"note": "n0"}, {"note": {"deep": 1}}, {"other": "x"}],
        "list": ["l0", "l1"],
        "odd key": 42,
        "n": None,
    }
    paths = ["$.a.b", "$.items[*].note", "$.list[1]", "$['odd key']", "$.n", "$.missing.x"]
    out = json.loads(encrypt_json_fields(json.dumps(doc).encode(), paths, seal))
    assert opened(out["a"]["b"]) == b"secret-b" and out["a"]["c"] == "plain"
    assert opened(out["items"][0]["note"]) == b"n0"
    assert opened(out["items"][1]["note"]) == b'{"deep":1}'
    assert out["items"][2] == {"other": "x"}
    assert out["list"][0] == "l0" and opened(out["list"][1]) == b"l1"
    assert opened(out["odd key"]) == b"42"
    assert out["n"] is None


@pytest.mark.parametrize("body", [b"{", b"", b"{'a': 1}", b'{"a": NaN}', b"\xff\xfe{"])
def test_unparsable_json_is_refused(body):
    with pytest.raises(FieldError):
        encrypt_json_fields(body, ["$.a"], seal)


@pytest.mark.parametrize("path", ["a.b", "$", "$..a", "$.a[", "$.a[-1]", "$.a[?(@.x)]"])
def test_unsupported_json_paths_are_named(path):
    with pytest.raises(FieldError, match="JSON path"):
        compile_json_path(path)


def test_sealed_json_values_are_findable_tokens():
    out = encrypt_json_fields(b'{"a":"<b>x</b>"}', ["$.a"], seal).decode()
    assert len(TOKEN_RE.findall(out)) == 1 and "<b>" not in out
