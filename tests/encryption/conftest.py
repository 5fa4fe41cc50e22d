"""Fixtures for encryption tests: the gateway with a KEK file in front of a real upstream that
stores exactly what it receives and serves it back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from gateway.crypto.keyring import generate_kek
from tests.auth.conftest import AuthGw, auth_config, launch
from tests.proxy.conftest import free_port

POLICY = """rules:
  - name: form
    match: {paths: ["/form/**"]}
    access: authenticated
    encrypt: {request: {form_fields: [title]}, response: tokens}
  - name: json
    match: {paths: ["/json/**"]}
    access: authenticated
    encrypt: {request: {json_fields: ["$.note", "$.items[*].text"]}, response: tokens}
  - name: blob
    match: {paths: ["/blob/**"]}
    access: authenticated
    encrypt: {request: {body: true}, response: body}
  - name: team
    match: {paths: ["/team/**"]}
    access: authenticated
    encrypt: {request: {form_fields: [title]}, response: tokens, scope: "role:staff"}
  - name: upload
    match: {paths: ["/upload/**"]}
    access: authenticated
    encrypt: {request: {form_fields: [title, doc]}, response: tokens}
  - name: raw
    match: {paths: ["/raw/**"]}
    access: public
"""


@dataclass
class Store:
    url: str
    bodies: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)


def store_app(store: Store) -> web.Application:
    """POST/PUT stores the body under its path (the /raw/ prefix ignored); GET serves it back
    with its content type, or as HTML with ?as=html."""

    def key(path: str) -> str:
        return path.split("/", 2)[-1]

    async def handler(request: web.Request) -> web.StreamResponse:
        store.hits.append(f"{request.method} {request.path}")
        if request.method in ("POST", "PUT"):
            store.bodies[key(request.path)] = (
                request.headers.get("Content-Type", ""),
                await request.read(),
            )
            return web.Response(status=204)
        content_type, body = store.bodies.get(key(request.path), ("text/plain", b""))
        if content_type.startswith("application/x-www-form-urlencoded"):
            content_type = "text/plain; charset=utf-8"
        if request.query.get("as") == "html":
            content_type = "text/html; charset=utf-8"
            body = b"<p>" + body + b"</p>"
        split = request.query.get("split")
        if split is not None:
            # Writes with a pause between (?split=5 or ?split=5,9,12): the gateway sees the
            # body in that many chunks.
            cuts = [int(c) for c in split.split(",")]
            resp = web.StreamResponse(headers={"Content-Type": content_type})
            await resp.prepare(request)
            for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
                if start:
                    await asyncio.sleep(0.05 if len(cuts) == 1 else 0.01)
                await resp.write(body[start:end])
            await resp.write_eof()
            return resp
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.fixture
async def store_upstream() -> AsyncIterator[Store]:
    port = free_port()
    store = Store(f"http://127.0.0.1:{port}")
    runner = web.AppRunner(store_app(store), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield store
    await runner.cleanup()


def write_setup(tmp_path: Path) -> dict:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "00-enc.yaml").write_text(POLICY)
    (tmp_path / "kek1").write_text(generate_kek() + "\n")
    return {"keys": {"active": "k1", "kek": {"k1": "file:kek1"}}}


@pytest.fixture
async def egw(store_upstream: Store, tmp_path: Path) -> AsyncIterator[AuthGw]:
    overrides = write_setup(tmp_path)
    config = auth_config(store_upstream.url, tmp_path, **overrides)
    agw = await launch(config)
    await agw.add_user("alice")
    await agw.add_user("bob")
    await agw.add_user("carol", roles=["other"])
    yield agw
    await agw.runner.cleanup()
