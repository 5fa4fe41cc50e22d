"""The HTML context machine on odd and hostile markup, split at every byte: a token opens only
where a browser would show it as text or a form value; anywhere unsure it stays."""

from __future__ import annotations

import os
import random

import pytest

from gateway.crypto.stream_tokens import TokenReplacer, context_for, escape_html
from gateway.crypto.token import make_opener, seal_field

KEY = os.urandom(32)
SCOPE = "user:alice"
TOKEN = seal_field(KEY, SCOPE, 1, b"p<'\"> q").encode()
SHOWN_HTML = b"p&lt;&#x27;&quot;&gt; q"
SHOWN_UNQUOTED = b"p&#x3c;&#x27;&#x22;&#x3e;&#x20;q"


def replace(page: bytes, cuts: list[int], content_type: str = "text/html") -> tuple[bytes, int]:
    replacer = TokenReplacer(make_opener(SCOPE, {1: KEY}), escape_html, context_for(content_type))
    out, last = [], 0
    for cut in [*cuts, len(page)]:
        out.append(replacer.feed(page[last:cut]))
        last = cut
    out.append(replacer.finish())
    return b"".join(out), replacer.counts.replaced


def check(markup: bytes, shown: bytes | None, content_type: str = "text/html") -> None:
    page = markup.replace(b"@", TOKEN)
    whole, replaced = replace(page, [], content_type)
    if shown is None:
        assert whole == page and replaced == 0, whole
    else:
        assert whole == page.replace(TOKEN, shown) and replaced == 1, whole
    for cut in range(1, len(page)):
        assert replace(page, [cut], content_type)[0] == whole, cut
    assert replace(page, list(range(1, len(page))), content_type)[0] == whole


@pytest.mark.parametrize(
    "markup",
    [
        b"<p>@</p>",
        b"<!DOCTYPE html>@",
        b"a < b @",
        b"</>@",
        b"<!-->@",
        b"<!--->@",
        b"<!-- x --!>@",
        b"<![CDATA[ x ]]>@",
        b"<?php x ?>@",
        b"<TITLE>@</TITLE>",
        b"<textarea>@</textarea >",
        b"<textarea></textareax>@",
        b"<script>x</script >@",
        b"<script><!--</script>@",
        b"<script><!--<script>--></script>@",
        b"<style></STYLE>@",
        b"<b\n>@",
        b"<br/>@",
        b"<input value=x>@",
    ],
)
def test_text_positions_open(markup: bytes) -> None:
    check(markup, SHOWN_HTML)


@pytest.mark.parametrize(
    "markup",
    [
        b'<input value="@">',
        b"<input value='@'>",
        b'<img alt="x @ y" src=z>',
        b'<a Title="@">',
        b'<input placeholder="@" aria-label=x>',
        b'<option label="@">',
        b'<input x="<" value="@">',
        b'<input/value="@">',
    ],
)
def test_allowlisted_attribute_values_open(markup: bytes) -> None:
    check(markup, SHOWN_HTML)


@pytest.mark.parametrize(
    "markup", [b"<input value=@>", b"<input value = @ x>", b"<INPUT VALUE=@", b"<img alt= src=@>"]
)
def test_unquoted_values_are_escaped_for_their_place(markup: bytes) -> None:
    check(markup, SHOWN_UNQUOTED)


@pytest.mark.parametrize(
    "markup",
    [
        b"<@>",
        b"<p @>",
        b"<p @=1>",
        b"</p title=@>",
        b'<img src="@">',
        b"<img src=@>",
        b'<IMG SRC="x?@">',
        b'<a href="@">',
        b'<img srcset="@ 1x">',
        b'<form action="@">',
        b'<button formaction="@">',
        b'<video poster="@">',
        b'<td background="@">',
        b'<q cite="@">',
        b'<object data="@">',
        b'<a ping="@">',
        b'<use xlink:href="@">',
        b'<p style="@">',
        b'<img onerror="@">',
        b'<meta content="@">',
        b'<div data-src="@">',
        b'<param name=movie value="@">',
        b'<p value="x" src="@">',
        b'<img src="<p>@',
        b"<img src='x\"<p>@",
        b'<img alt="a"src="@">',
        b'<img alt src="@">',
        b'<img =alt="@">',
        b'<input value="x<p>@">',
        b"<input value='</td><td>@'>",
        b'<p title="a\n@">',
        b"<input value=x<@>",
        b'<form action=//evil><button>Go</button><input name=x value="</p><p>@</p>',
        b"<script>@</script>",
        b"<script>'</script'@</script>",
        b"<script><!--<script></script>@</script>",
        b"<style>@</style>",
        b"<xmp>@</xmp>",
        b"<iframe>@</iframe>",
        b"<textarea></textarea><img src=@>",
        b"<!-- @ -->",
        b"<!-- --> <!-- @ -->",
        b"<!--- @ -->",
        b"<!-- -- > @ -->",
        b"<!DOCTYPE @>",
        b"<![CDATA[ @ ]]>",
        b"<?x @ ?>",
        b"<svg><p>@",
        b"<math>@",
        b"<noscript>@",
        b"<noscript></noscript>@",
        b"<plaintext>@",
        b"<p>x\x1b$B</p>@",
    ],
)
def test_urls_scripts_names_and_unsure_places_stay(markup: bytes) -> None:
    check(markup, None)


def test_utf16_byte_order_mark_and_opaque_charsets_open_nothing() -> None:
    check(b"\xff\xfe<p>@", None)
    check(b"<p>@", None, "text/html; charset=UTF-16")
    check(b"<p>@", None, 'text/html; charset="iso-2022-jp"')
    check(b"<p>@", SHOWN_HTML, "text/html; charset=utf-8")


@pytest.mark.parametrize(
    ("markup", "shown"),
    [
        (b'<?xml version="1.0"?><html><p>@</p>', SHOWN_HTML),
        (b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "x.dtd"><p>@', SHOWN_HTML),
        (b'<input value="@"/>', SHOWN_HTML),
        (b"<title><img src='@'/></title>", None),
        (b'<?xml version="1.0" ?><?xml-stylesheet href="x.xsl"?><p>@', None),
        (b"<?x ?><p>@", None),
        (b"<?xml > ?><p>@", SHOWN_HTML),
        (b"<?xml > <img src='?>@", SHOWN_HTML),
        (b"<!-- > --><p>@", SHOWN_HTML),
        (b"<!--><p>@", None),
        (b"<![CDATA[ @ ]]>", None),
        (b"<![CDATA[ > ]]><p>@", SHOWN_HTML),
        (b"<script>x</script><p>@", None),
        (b"<svg:style/><p>@", None),
        (b'<!DOCTYPE x [<!ENTITY e "a">]><p>@', None),
        (b'<!DOCTYPE x "a>b"><p>@', None),
    ],
)
def test_xhtml_follows_xml_rules(markup: bytes, shown: bytes | None) -> None:
    check(markup, shown, "application/xhtml+xml")


def test_random_markup_gives_the_same_answer_in_any_chunking() -> None:
    rng = random.Random(7)
    pieces = [b"<", b">", b'"', b"'", b"=", b" ", b"\n", b"/", b"!", b"-", b"--", b"<!--"]
    pieces += [b"-->", b"<script>", b"</script>", b"<textarea>", b"</textarea>", b"<p", b"<!"]
    pieces += [b" title=", b" src=", b"@", b"x", b"?", b"<title>", b"</TITLE >", b'<a b="c">']
    for _ in range(150):
        page = b"".join(rng.choice(pieces) for _ in range(30)).replace(b"@", TOKEN)
        whole, _ = replace(page, [])
        assert replace(page, list(range(1, len(page))))[0] == whole, page
        for _ in range(3):
            cuts = sorted(rng.sample(range(1, len(page)), 5))
            assert replace(page, cuts)[0] == whole, (page, cuts)
