"""`gateway_crypto_bytes_total{op}` counts the plaintext bytes each transform sealed or opened:
whole bodies, JSON fields, form fields; nothing for tokens a user cannot open or bodies refused."""

from __future__ import annotations

import os

from prometheus_client import REGISTRY

from tests.auth.conftest import AuthGw
from tests.encryption.conftest import Store


def moved() -> dict[str, float]:
    return {
        op: REGISTRY.get_sample_value("gateway_crypto_bytes_total", {"op": op}) or 0.0
        for op in ("encrypt", "decrypt")
    }


def delta(before: dict[str, float]) -> dict[str, float]:
    now = moved()
    return {op: now[op] - before[op] for op in now}


async def test_whole_body_bytes(egw: AuthGw, store_upstream: Store) -> None:
    body = os.urandom(200_000 + 7)  # several segments, the last one partial
    async with egw.client() as s:
        await egw.login(s, "alice")
        before = moved()
        async with s.post(
            egw.url + "/blob/b", data=body, headers={"Content-Type": "image/png"}
        ) as r:
            assert r.status == 204
        assert delta(before) == {"encrypt": len(body), "decrypt": 0}
        assert len(store_upstream.bodies["b"][1]) > len(body)
        before = moved()
        async with s.get(egw.url + "/blob/b") as r:
            assert await r.read() == body
        assert delta(before) == {"encrypt": 0, "decrypt": len(body)}


async def test_field_bytes_and_foreign_tokens(egw: AuthGw, store_upstream: Store) -> None:
    doc = {"note": "n\u00e9te", "items": [{"text": "abc"}, {"text": ""}], "keep": "zzzz"}
    sealed = len("n\u00e9te".encode()) + 3 + 0
    async with egw.client() as s:
        await egw.login(s, "alice")
        before = moved()
        async with s.post(egw.url + "/json/j", json=doc) as r:
            assert r.status == 204
        assert delta(before) == {"encrypt": sealed, "decrypt": 0}
        before = moved()
        async with s.get(egw.url + "/json/j") as r:
            assert await r.json() == doc
        assert delta(before) == {"encrypt": 0, "decrypt": sealed}
        before = moved()
        async with s.post(egw.url + "/form/f", data={"title": "twelve bytes", "x": "y"}) as r:
            assert r.status == 204
        assert delta(before) == {"encrypt": 12, "decrypt": 0}
    async with egw.client() as s:
        await egw.login(s, "bob")
        before = moved()
        async with s.get(egw.url + "/json/j") as r:
            assert "gwe1." in await r.text()
        # Bob cannot open Alice's tokens: nothing was decrypted.
        assert delta(before) == {"encrypt": 0, "decrypt": 0}
        before = moved()
        async with s.post(
            egw.url + "/json/bad",
            data=b'{"note": "x"',
            headers={"Content-Type": "application/json"},
        ) as r:
            assert r.status == 400
        assert delta(before) == {"encrypt": 0, "decrypt": 0}
