"""The smallest honest aiohttp reverse proxy: the baseline the gateway is measured against.

One shared ClientSession, no decompression, bodies streamed both ways, hop-by-hop headers
dropped, uvloop. No policy, no logging, no header hygiene beyond that.

    python bench/minimal_proxy.py --port 8081 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse

import aiohttp
import uvloop
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "proxy-authenticate", "proxy-authorization", "host", "content-length"}
)
SESSION = web.AppKey("session", aiohttp.ClientSession)


def _filter(headers: CIMultiDict[str], keep_length: bool = False) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        low = name.lower()
        if low not in HOP_BY_HOP or (keep_length and low == "content-length"):
            out.add(name, value)
    return out


def build(upstream: str) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        url = URL(upstream + request.raw_path, encoded=True)
        body = request.content.iter_chunked(65536) if request.body_exists else None
        async with request.app[SESSION].request(
            request.method, url, headers=_filter(request.headers), data=body, allow_redirects=False
        ) as up:
            response = web.StreamResponse(
                status=up.status, reason=up.reason, headers=_filter(up.headers, keep_length=True)
            )
            await response.prepare(request)
            async for chunk in up.content.iter_chunked(65536):
                await response.write(chunk)
            await response.write_eof()
            return response

    async def session_ctx(app: web.Application):  # noqa: ANN202
        app[SESSION] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        yield
        await app[SESSION].close()

    app = web.Application()
    app.router.add_route("*", r"/{tail:[\s\S]*}", handle)
    app.cleanup_ctx.append(session_ctx)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT")
    args = parser.parse_args()
    web.run_app(
        build(args.upstream.rstrip("/")),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=1024,
        shutdown_timeout=1,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
