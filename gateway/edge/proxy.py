"""The forward step: streams a request to the upstream and its answer back to the client.

Owns the one pooled `ClientSession` to the upstream, timeouts, the body-size limit while
streaming, WebSocket relaying and the mapping of upstream failures (refused -> 502, too slow ->
504). Bodies are never buffered whole here: chunks flow through as they arrive, optionally
through a `BodyFilter` supplied by a transform step. Never logs bodies or header values.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.http.errors import BadGateway, GatewayError, GatewayTimeout, PayloadTooLarge
from gateway.metrics import UPSTREAM_DURATION, UPSTREAM_ERRORS, UPSTREAM_UP

__all__ = ["BodyFilter", "UpstreamClient", "body_blocks", "limited_body"]

log = logging.getLogger("gateway.proxy")
# The upstream response's read buffer: reading pauses past twice this much unread (aiohttp's
# high-water mark), so a relay moves 256 KiB blocks with few pause/resume round trips while a
# slow client still holds at most ~512 KiB per response here.
READ_BUFFER = 256 * 1024
_WS_CLIENT_HEADERS = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)
_NO_BODY_STATUS = frozenset({204, 304})


class BodyFilter(Protocol):
    """A streaming transformation of a response body (e.g. decryption)."""

    def headers(self, headers: CIMultiDict[str]) -> None:
        """Adjust response headers (Content-Type, Content-Length) before they are sent.

        The filter may keep `headers` and change it until its stream yields the first chunk."""

    def stream(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]: ...

    # Once the upstream's whole body is in, output up to this many bytes is gathered and sent
    # with a Content-Length (0: never; the output streams as the filter yields it).
    gather_limit: int


async def body_blocks(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """A body as the HTTP parser handed it over, one buffered block at a time, never copied:
    `iter_chunked(n)` slices and joins blocks to size them, `iter_any()` joins every block
    buffered at the time. A block is at most one socket read (the parser's input)."""
    while True:
        data, end_of_http_chunk = await content.readchunk()
        if data:
            yield data
        elif not end_of_http_chunk:  # (b"", False) is the end of the body
            return


async def limited_body(content: aiohttp.StreamReader, limit: int) -> AsyncIterator[bytes]:
    """Yield the request body block by block; stop with PayloadTooLarge past `limit` bytes."""
    seen = 0
    async for chunk in body_blocks(content):
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge("body_over_limit")
        yield chunk


class UpstreamClient:
    def __init__(self, base_url: str, *, connect_timeout: float, timeout: float) -> None:
        self.base_url = base_url
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._timeout,
                read_bufsize=READ_BUFFER,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def forward(
        self,
        request: web.Request,
        target: str,
        headers: CIMultiDict[str],
        body: AsyncIterator[bytes] | bytes | None,
        *,
        make_downstream: Callable[[CIMultiDict[str]], CIMultiDict[str]],
        body_filter: BodyFilter | None = None,
    ) -> web.StreamResponse:
        """Send the request upstream and stream the answer to the client."""
        body_error: GatewayError | None = None

        def failed(exc: GatewayError) -> None:
            nonlocal body_error
            body_error = exc

        if isinstance(body, AsyncIterator):
            body = _watch(body, failed)
        started = time.monotonic()
        try:
            upstream = await self.session.request(
                request.method,
                URL(self.base_url + target, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                compress=None,
                chunked=None,
            )
        except PayloadTooLarge:
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError):
            UPSTREAM_ERRORS.labels("timeout").inc()
            raise GatewayTimeout("upstream_timeout") from None
        except aiohttp.ClientError as exc:
            if body_error is not None:
                # The body (its size limit, a transform) failed: the upstream got no end.
                raise body_error from None
            UPSTREAM_ERRORS.labels(_kind(exc)).inc()
            UPSTREAM_UP.set(0)
            raise BadGateway(_kind(exc)) from None
        UPSTREAM_DURATION.observe(time.monotonic() - started)
        UPSTREAM_UP.set(1)
        try:
            return await self._relay(request, upstream, make_downstream, body_filter)
        finally:
            upstream.close() if not upstream.content.at_eof() else upstream.release()

    async def _relay(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        make_downstream: Callable[[CIMultiDict[str]], CIMultiDict[str]],
        body_filter: BodyFilter | None,
    ) -> web.StreamResponse:
        headers = make_downstream(CIMultiDict(upstream.headers))
        if inspect.isawaitable(headers):  # plugins' after_response hooks are async
            headers = await headers
        no_body = request.method == "HEAD" or upstream.status in _NO_BODY_STATUS
        if body_filter is not None and not no_body:
            body_filter.headers(headers)
        chunks: AsyncIterator[bytes] = body_blocks(upstream.content)
        if body_filter is not None and not no_body:
            chunks = body_filter.stream(chunks)
        # The first chunk is pulled before the status line goes out, so a filter that fails on
        # it (e.g. a corrupt envelope header) still becomes a clean 502.
        first = b"" if no_body else await _pull(chunks)
        if no_body or not upstream.content.at_eof():
            pass
        elif body_filter is None:
            whole = first or b""
            if headers.get("Content-Length") == str(len(whole)):
                # The whole body came in the first read: one write for headers and body.
                return web.Response(
                    status=upstream.status, reason=upstream.reason, headers=headers, body=whole
                )
        elif "Content-Length" not in headers and (limit := getattr(body_filter, "gather_limit", 0)):
            # The filter's whole input is here and its output has no announced length (token
            # replacement): gather that output, up to the filter's limit, so the answer goes
            # out in one write with its Content-Length instead of chunked.
            parts = [] if first is None else [first]
            size = len(first or b"")
            while size <= limit:
                more = await _pull(chunks)
                if more is None:
                    return web.Response(
                        status=upstream.status,
                        reason=upstream.reason,
                        headers=headers,
                        body=b"".join(parts),
                    )
                parts.append(more)
                size += len(more)
            first, chunks = parts[0], _chain(parts[1:], chunks)
        first = first or b""
        # Built only now: a filter may restore headers (e.g. Content-Type) once its first
        # chunk verified.
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=headers
        )
        if "Content-Length" not in headers and not no_body and upstream.status >= 200:
            response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if first:
                await response.write(first)
            if not no_body:
                async for chunk in chunks:
                    await response.write(chunk)
            await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            log.info("client went away mid-response")
        except Exception as exc:  # noqa: BLE001 - any failure after the status line: cut it
            log.warning("response aborted after headers: %s", type(exc).__name__)
            # SECURITY: the client must not see a clean, truncated success.
            if request.transport is not None:
                request.transport.abort()
        return response

    async def relay_websocket(
        self, request: web.Request, target: str, headers: CIMultiDict[str]
    ) -> web.StreamResponse:
        protocols = [
            p.strip()
            for v in request.headers.getall("Sec-WebSocket-Protocol", [])
            for p in v.split(",")
            if p.strip()
        ]
        for name in list(headers):
            if name.lower() in _WS_CLIENT_HEADERS:
                del headers[name]
        url = URL(self.base_url.replace("http", "ws", 1) + target, encoded=True)
        try:
            upstream = await self.session.ws_connect(
                url, headers=headers, protocols=protocols, autoping=True, max_msg_size=0
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise GatewayTimeout("upstream_timeout") from None
        except aiohttp.ClientError as exc:
            raise BadGateway(_kind(exc)) from None
        client = web.WebSocketResponse(
            protocols=[upstream.protocol] if upstream.protocol else (),
            autoping=True,
            max_msg_size=0,
        )
        await client.prepare(request)
        async with upstream:
            to_up = asyncio.create_task(_pump(client, upstream))
            to_client = asyncio.create_task(_pump(upstream, client))
            done, pending = await asyncio.wait(
                {to_up, to_client}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return client


async def _pull(chunks: AsyncIterator[bytes]) -> bytes | None:
    """The next body chunk (None at the end), upstream failures mapped to 504 and 502."""
    try:
        return await anext(chunks, None)
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise GatewayTimeout("upstream_timeout_body") from None
    except aiohttp.ClientError as exc:
        raise BadGateway(_kind(exc)) from None


async def _chain(parts: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    async for chunk in rest:
        yield chunk


async def _watch(
    body: AsyncIterator[bytes], failed: Callable[[GatewayError], None]
) -> AsyncIterator[bytes]:
    try:
        async for chunk in body:
            yield chunk
    except GatewayError as exc:
        failed(exc)
        raise


def _closable(code: int | None) -> int:
    # 1005/1006/1015 are reserved and may not be sent on the wire.
    if code is None or code in (1005, 1006, 1015) or code < 1000:
        return 1000
    return code


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    async for msg in source:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(msg.data)
        elif msg.type == aiohttp.WSMsgType.ERROR:
            break
    await sink.close(code=_closable(source.close_code), message=b"")


def _kind(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect_refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "payload"
    return "protocol"
