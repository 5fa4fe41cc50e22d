"""End to end: the upstream stores only ciphertext; each user reads back their own plaintext."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from gateway.crypto.envelope import ENVELOPE_CONTENT_TYPE, MAGIC
from tests.auth.conftest import AuthGw
from tests.encryption.conftest import Store

SECRET = "launch code 0000 \u00e9"


async def test_form_field_sealed_and_read_back(egw: AuthGw, store_upstream: Store) -> None:
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(egw.url + "/form/n1", data={"title": SECRET, "tag": "public"}) as r:
            assert r.status == 204, await r.text()
        ctype, stored = store_upstream.bodies["n1"]
        assert SECRET.encode() not in stored and b"launch" not in stored
        assert stored.startswith(b"title=gwe1.") and stored.endswith(b"&tag=public")
        async with s.get(egw.url + "/form/n1") as r:
            assert r.status == 200
            assert "Content-Length" not in r.headers or r.headers["Content-Length"] == str(
                len(await r.read())
            )
            assert await r.text() == f"title={SECRET}&tag=public"
    async with egw.client() as s:
        await egw.login(s, "bob")
        async with s.get(egw.url + "/form/n1") as r:
            assert r.status == 200
            assert (await r.read()) == stored
    assert egw.gw.services["store"] is not None


async def test_html_escaped_plaintext(egw: AuthGw, store_upstream: Store) -> None:
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(egw.url + "/form/x", data={"title": "<script>alert(1)</script>"}) as r:
            assert r.status == 204
        assert b"script" not in store_upstream.bodies["x"][1]
        async with s.get(egw.url + "/form/x?as=html") as r:
            body = await r.text()
        assert "<script>" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


async def test_json_fields_sealed_and_read_back(egw: AuthGw, store_upstream: Store) -> None:
    doc = {
        "note": 'say "hi"\n' + SECRET,
        "items": [{"text": "first item"}, {"text": "second item"}],
        "n": 3,
    }
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(egw.url + "/json/j1", json=doc) as r:
            assert r.status == 204, await r.text()
        _, stored = store_upstream.bodies["j1"]
        sent = json.loads(stored)
        assert sent["n"] == 3
        assert sent["note"].startswith("gwe1.")
        assert all(i["text"].startswith("gwe1.") for i in sent["items"])
        # spaces are outside the base64url alphabet: these cannot occur inside a token by chance
        assert b"launch code" not in stored and b"first item" not in stored
        async with s.get(egw.url + "/json/j1") as r:
            assert r.status == 200
            assert await r.json() == doc


async def test_role_scope_shared(egw: AuthGw, store_upstream: Store) -> None:
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(egw.url + "/team/t", data={"title": "shared"}) as r:
            assert r.status == 204
    async with egw.client() as s:
        await egw.login(s, "bob")
        async with s.get(egw.url + "/team/t") as r:
            assert await r.text() == "title=shared"
    async with egw.client() as s:
        await egw.login(s, "carol")
        async with s.get(egw.url + "/team/t") as r:
            assert r.status == 403


async def test_body_round_trip(egw: AuthGw, store_upstream: Store) -> None:
    payload = bytes(range(256)) * 1000 + b"tail"
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.put(
            egw.url + "/blob/b1", data=payload, headers={"Content-Type": "image/x-test"}
        ) as r:
            assert r.status == 204, await r.text()
        ctype, stored = store_upstream.bodies["b1"]
        assert ctype == ENVELOPE_CONTENT_TYPE
        assert stored.startswith(MAGIC) and payload[:4096] not in stored
        async with s.get(egw.url + "/blob/b1") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "image/x-test"
            assert await r.read() == payload
    async with egw.client() as s:
        await egw.login(s, "bob")
        async with s.get(egw.url + "/blob/b1") as r:
            assert r.status == 502


async def test_body_not_envelope_is_502(egw: AuthGw, store_upstream: Store) -> None:
    store_upstream.bodies["plain"] = ("text/plain", b"not encrypted")
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.get(egw.url + "/blob/plain") as r:
            assert r.status == 502
            assert b"not encrypted" not in await r.read()


async def test_tampered_token_stays(egw: AuthGw, store_upstream: Store) -> None:
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(egw.url + "/form/t", data={"title": "secret"}) as r:
            assert r.status == 204
        ctype, stored = store_upstream.bodies["t"]
        i = stored.index(b"gwe1.") + 20
        flipped = b"A" if stored[i : i + 1] != b"A" else b"B"
        tampered = stored[:i] + flipped + stored[i + 1 :]
        store_upstream.bodies["t"] = (ctype, tampered)
        before = (
            REGISTRY.get_sample_value(
                "gateway_crypto_operations_total", {"op": "decrypt", "result": "invalid"}
            )
            or 0.0
        )
        async with s.get(egw.url + "/form/t") as r:
            assert r.status == 200
            assert await r.read() == tampered
    after = REGISTRY.get_sample_value(
        "gateway_crypto_operations_total", {"op": "decrypt", "result": "invalid"}
    )
    assert after == before + 1
    events = [json.loads(e) for e in await egw.gw.services["store"].audit_tail(20)]
    failed = [e for e in events if e["event"] == "decrypt.failed"]
    assert len(failed) == 1 and failed[0]["user"] == "alice" and failed[0]["count"] == "1"
    assert "secret" not in json.dumps(events)


async def test_no_identity_never_reaches_upstream(egw: AuthGw, store_upstream: Store) -> None:
    async with egw.client() as s:
        for path in ("/form/a", "/json/a", "/blob/a"):
            async with s.post(egw.url + path, data=b"title=x") as r:
                assert r.status == 401
    assert store_upstream.hits == []


async def test_unparsable_json_is_400(egw: AuthGw, store_upstream: Store) -> None:
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(
            egw.url + "/json/bad",
            data=b'{"note": "plain secret"',
            headers={"Content-Type": "application/json"},
        ) as r:
            assert r.status == 400
        async with s.post(
            egw.url + "/form/bad",
            data=b"title=%zz",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as r:
            assert r.status == 400
        async with s.post(
            egw.url + "/form/mp", data=b"x", headers={"Content-Type": "multipart/form-data; b=1"}
        ) as r:
            assert r.status == 400
    assert not any("bad" in h or "mp" in h for h in store_upstream.hits)


async def test_token_split_across_chunks(egw: AuthGw, store_upstream: Store) -> None:
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(egw.url + "/form/s", data={"title": SECRET}) as r:
            assert r.status == 204
        stored = store_upstream.bodies["s"][1]
        start = stored.index(b"gwe1.")
        # Cut before, inside and just after the "gwe1." prefix, and inside the token body.
        for split in range(start - 1, start + 8):
            async with s.get(egw.url + f"/form/s?split={split}") as r:
                assert r.status == 200
                assert await r.text() == f"title={SECRET}", split
        # An answer without any token still passes through untouched.
        store_upstream.bodies["none"] = ("text/plain", b"no tokens here: gwe1 gwe gw")
        async with s.get(egw.url + "/form/none?split=20") as r:
            assert await r.read() == b"no tokens here: gwe1 gwe gw"
