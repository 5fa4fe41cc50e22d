"""Field tokens and the streaming replacer: a token opens only for its own scope and version,
is found wherever a chunk boundary falls, and its plaintext comes back escaped for the page."""

from __future__ import annotations

import json
import os
import random
import re

import pytest

from gateway.crypto.errors import DecryptError
from gateway.crypto.stream_tokens import (
    TokenReplacer,
    escape_html,
    escape_json_string,
    escape_text,
    escaper_for,
)
from gateway.crypto.token import (
    MAX_FIELD_PLAINTEXT,
    MAX_TOKEN_LEN,
    MIN_TOKEN_LEN,
    TOKEN_RE,
    TOKEN_RE_BYTES,
    make_opener,
    open_field,
    seal_field,
    token_key_version,
)

KEY = os.urandom(32)
SCOPE = "user:alice"
XSS = b"<script>alert('x')</script> & \"q\""


def test_token_round_trip_and_version_is_readable_before_opening():
    token = seal_field(KEY, SCOPE, 7, b"hello")
    assert token.startswith("gwe1.") and TOKEN_RE.fullmatch(token)
    assert token_key_version(token) == 7
    assert open_field(KEY, SCOPE, 7, token) == b"hello"


@pytest.mark.parametrize("size", [0, 1, 100, MAX_FIELD_PLAINTEXT])
def test_token_lengths_stay_within_the_regex_bounds(size):
    token = seal_field(KEY, SCOPE, 1, os.urandom(size))
    assert MIN_TOKEN_LEN <= len(token) <= MAX_TOKEN_LEN
    assert TOKEN_RE.fullmatch(token)


def test_oversized_field_is_refused():
    with pytest.raises(ValueError):
        seal_field(KEY, SCOPE, 1, b"x" * (MAX_FIELD_PLAINTEXT + 1))


@pytest.mark.parametrize(
    ("key", "scope", "version"),
    [(os.urandom(32), SCOPE, 1), (KEY, "user:bob", 1), (KEY, "role:admin", 1), (KEY, SCOPE, 2)],
    ids=["other-key", "other-user", "role-scope", "other-version"],
)
def test_token_does_not_open_under_another_key_scope_or_version(key, scope, version):
    token = seal_field(KEY, SCOPE, 1, b"secret")
    with pytest.raises(DecryptError):
        open_field(key, scope, version, token)


def test_every_tampered_character_fails():
    token = seal_field(KEY, SCOPE, 1, b"secret")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in range(5, len(token)):
        replacement = alphabet[(alphabet.index(token[i]) + 1) % 64]
        forged = token[:i] + replacement + token[i + 1 :]
        with pytest.raises(DecryptError):
            open_field(KEY, SCOPE, 1, forged)


def test_truncated_or_extended_tokens_fail():
    token = seal_field(KEY, SCOPE, 1, b"secret")
    for forged in (token[:-1], token[:-2], token + "A", token[:20], "gwe1.", token + "="):
        with pytest.raises(DecryptError):
            open_field(KEY, SCOPE, 1, forged)


def test_opener_tells_foreign_tokens_from_tampered_ones():
    opener = make_opener(SCOPE, {1: KEY})
    mine = seal_field(KEY, SCOPE, 1, b"mine")
    assert opener(mine) == b"mine"
    assert opener(seal_field(os.urandom(32), "user:bob", 1, b"bob")) is None
    assert opener(seal_field(KEY, SCOPE, 9, b"unknown version")) is None
    tampered = mine[:-3] + ("A" if mine[-3] != "A" else "B") + mine[-2:]
    with pytest.raises(DecryptError):
        opener(tampered)


# -- the streaming replacer -----------------------------------------------------------------


def replace_all(data: bytes, cuts: list[int], escape=escape_html) -> tuple[bytes, TokenReplacer]:
    replacer = TokenReplacer(make_opener(SCOPE, {1: KEY}), escape)
    out, last = [], 0
    for cut in [*cuts, len(data)]:
        out.append(replacer.feed(data[last:cut]))
        last = cut
    out.append(replacer.finish())
    return b"".join(out), replacer


def test_xss_plaintext_is_html_escaped_when_the_token_is_split_at_every_offset():
    token = seal_field(KEY, SCOPE, 1, XSS).encode()
    page = b"<p>note: " + token + b"</p>"
    expected = b"<p>note: &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;</p>"
    for cut in range(len(page) + 1):
        out, replacer = replace_all(page, [cut])
        assert out == expected, cut
        assert replacer.counts.replaced == 1
        assert b"<script>" not in out


def test_two_cut_points_across_two_adjacent_tokens():
    t1 = seal_field(KEY, SCOPE, 1, b"one").encode()
    t2 = seal_field(KEY, SCOPE, 1, b"two").encode()
    page = b'{"a":"' + t1 + b'","b":"' + t2 + b'"}'
    for first in range(0, len(page), 3):
        for second in range(first, len(page), 11):
            out, _ = replace_all(page, [first, second], escape_json_string)
            assert json.loads(out) == {"a": "one", "b": "two"}


def test_one_byte_chunks_with_mixed_outcomes_are_counted():
    mine = seal_field(KEY, SCOPE, 1, b"ok").encode()
    foreign = seal_field(os.urandom(32), "user:bob", 1, b"bob's").encode()
    tampered = mine[:-2] + (b"A" if mine[-2:-1] != b"A" else b"B") + mine[-1:]
    not_a_token = b"gwe1.short gwe1 g gw gwe"
    page = b" ".join([mine, foreign, tampered, not_a_token, b"gwe1."])
    out, replacer = replace_all(page, list(range(1, len(page))))
    assert out == b" ".join([b"ok", foreign, tampered, not_a_token, b"gwe1."])
    assert (replacer.counts.replaced, replacer.counts.foreign, replacer.counts.invalid) == (1, 1, 1)


def test_randomly_chunked_page_equals_the_unchunked_result():
    rng = random.Random(5)
    tokens = [seal_field(KEY, SCOPE, 1, f"value {i} <b>".encode()).encode() for i in range(30)]
    # Random filler, kept off the token alphabet right next to each token.
    page = b"".join(b"<" + rng.randbytes(rng.randrange(0, 200)) + b">" + t for t in tokens)
    whole, _ = replace_all(page, [])
    for _ in range(20):
        cuts = sorted(rng.sample(range(len(page)), 40))
        assert replace_all(page, cuts)[0] == whole
    assert whole.count(b"&lt;b&gt;") == 30


def test_hold_back_is_bounded_by_one_maximal_token():
    replacer = TokenReplacer(make_opener(SCOPE, {1: KEY}), escape_text)
    out = replacer.feed(b"x" * 1000 + b"gwe1." + b"A" * 100)
    assert out == b"x" * 1000 and replacer.held_back == 105
    run = b"A" * MAX_TOKEN_LEN
    released = replacer.feed(run)
    assert released.startswith(b"gwe1.") and replacer.held_back == 0
    # The over-long run continues: no token may start inside it.
    rest = replacer.feed(b"AAA" + b"gwe1" + b"A" * 60) + replacer.finish()
    assert rest.endswith(b"A" * 60)
    assert replacer.counts.replaced == replacer.counts.invalid == 0


def test_a_token_glued_to_an_overlong_run_is_handled_the_same_split_or_not():
    token = seal_field(KEY, SCOPE, 1, b"x").encode()
    page = b"gwe1." + b"A" * (MAX_TOKEN_LEN + 10) + b"gwe1." + token[5:]
    whole, _ = replace_all(page, [])
    for cut in (MAX_TOKEN_LEN + 2, MAX_TOKEN_LEN + 12, len(page) - 5):
        assert replace_all(page, [cut])[0] == whole


def test_json_escaper_is_safe_inside_html_script_blocks():
    escaped = escape_json_string(b'</script><b>"x"\\ & \xe2\x80\xa8 \n')
    assert b"<" not in escaped and b">" not in escaped and b"&" not in escaped
    assert json.loads(b'"' + escaped + b'"') == '</script><b>"x"\\ & \u2028 \n'


def test_escaper_choice_by_content_type():
    assert escaper_for("text/html; charset=utf-8") is escape_html
    assert escaper_for("application/problem+json") is escape_json_string
    assert escaper_for("text/plain") is escape_text
    assert escaper_for("application/javascript") is None
    assert escaper_for("text/css") is None


def test_token_regex_finds_tokens_in_urls_forms_and_json():
    token = seal_field(KEY, SCOPE, 1, b"v")
    for text in (f"/x?q={token}&b=1", f"a={token}", json.dumps({"k": token}), f"'{token}'"):
        assert [m.group() for m in TOKEN_RE.finditer(text)] == [token]
        assert re.search(TOKEN_RE_BYTES, text.encode())
