"""multipart/form-data on a `form_fields` rule, through a real gateway and a recording upstream:
named text fields arrive as tokens, named file parts as envelopes, the rest untouched; the
plaintext is never in the bytes the upstream received; malformed bodies get 400 and reach
nobody."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
import pytest
from aiohttp import BodyPartReader, web
from prometheus_client import REGISTRY

from gateway.crypto.envelope import (
    ENVELOPE_CONTENT_TYPE,
    MAGIC,
    EnvelopeDecryptor,
    decrypt_envelope,
    parse_header,
)
from gateway.crypto.token import open_field, token_key_version
from gateway.edge.transform.multipart import MAX_PART_HEADER, MAX_PARTS
from tests.auth.conftest import AuthGw, auth_config, launch
from tests.encryption.conftest import Store, write_setup
from tests.support.upstream import serve

TITLE = "quarterly plan \u00e9 <b>"
FILE = b"%PDF-1.7 TOP-SECRET-FILE-BODY " * 3000 + b"\r\n--not-a-boundary\r\n"


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def split_parts(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """An independent, minimal reader of the body the upstream got (fresh random boundary)."""
    boundary = content_type.split("boundary=", 1)[1].encode()
    assert body.startswith(b"--" + boundary + b"\r\n")
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n")
    inner = body[len(boundary) + 4 : -(len(boundary) + 8)]
    parts = []
    for raw in inner.split(b"\r\n--" + boundary + b"\r\n"):
        head, _, data = raw.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((headers, data))
    return parts


def form() -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("title", TITLE)
    data.add_field("tag", "visible-tag")
    data.add_field("doc", io.BytesIO(FILE), filename="plan.pdf", content_type="application/pdf")
    data.add_field("att", io.BytesIO(b"public attachment"), filename="a.txt")
    return data


async def test_fields_and_files_sealed(egw: AuthGw, store_upstream: Store) -> None:
    enc_before = sample("gateway_crypto_bytes_total", {"op": "encrypt"})
    dec_before = sample("gateway_crypto_bytes_total", {"op": "decrypt"})
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(egw.url + "/upload/m1", data=form()) as r:
            assert r.status == 204, await r.text()
        ctype, raw = store_upstream.bodies["m1"]
        # The plaintext is nowhere in the bytes that reached the upstream.
        assert TITLE.encode() not in raw and b"quarterly" not in raw
        assert b"TOP-SECRET" not in raw and b"%PDF" not in raw
        assert ctype.startswith("multipart/form-data; boundary=portcullis-")
        parts = split_parts(ctype, raw)
        assert [p[0]["Content-Disposition"] for p in parts] == [
            'form-data; name="title"',
            'form-data; name="tag"',
            'form-data; name="doc"; filename="plan.pdf"',
            'form-data; name="att"; filename="a.txt"',
        ]
        datakeys = egw.gw.services["datakeys"]
        token = parts[0][1].decode()
        key = await datakeys.get("user:alice", token_key_version(token))
        assert open_field(key, "user:alice", token_key_version(token), token) == TITLE.encode()
        assert parts[1][1] == b"visible-tag"
        assert parts[2][0]["Content-Type"] == ENVELOPE_CONTENT_TYPE
        assert parts[2][1].startswith(MAGIC)
        assert decrypt_envelope(key, "user:alice", parts[2][1]) == ("application/pdf", FILE)
        assert parts[3][1] == b"public attachment"
        assert sample("gateway_crypto_bytes_total", {"op": "encrypt"}) == enc_before + len(
            TITLE.encode()
        ) + len(FILE)
        # The same stored body read back as HTML: the token is opened, HTML-escaped.
        async with s.get(egw.url + "/upload/m1?as=html") as r:
            page = await r.read()
        assert "quarterly plan \u00e9 &lt;b&gt;".encode() in page
        assert sample("gateway_crypto_bytes_total", {"op": "decrypt"}) == dec_before + len(
            TITLE.encode()
        )
    # Another user cannot open the file part.
    bob_key = await datakeys.active("user:bob")
    with pytest.raises(Exception, match="decryption failed"):
        decrypt_envelope(bob_key[1], "user:alice", parts[2][1])


async def test_planted_token_is_sealed_again(egw: AuthGw, store_upstream: Store) -> None:
    async with egw.client() as s:
        await egw.login(s, "alice")
        body, headers = mp(part("title", PLANTED) + b"--b0undary--\r\n")
        async with s.post(egw.url + "/upload/p", data=body, headers=headers) as r:
            assert r.status == 204
    ctype, raw = store_upstream.bodies["p"]
    token = split_parts(ctype, raw)[0][1]
    assert PLANTED not in raw and token.startswith(b"gwe1.")
    key = await egw.gw.services["datakeys"].get("user:alice", 1)
    assert open_field(key, "user:alice", 1, token) == PLANTED


def mp(body: bytes, boundary: str = "b0undary") -> tuple[bytes, dict[str, str]]:
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def part(name: str, value: bytes, extra: str = "") -> bytes:
    return (
        f'--b0undary\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode()
        + (value + b"\r\n")
    )


SECRET = b"PLAIN-SECRET-VALUE"
PLANTED = b"gwe1.AQAAAAFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE"
MALFORMED = {
    "no_boundary": (
        part("title", SECRET) + b"--b0undary--\r\n",
        {"Content-Type": "multipart/form-data"},
    ),
    "wrong_boundary": mp(part("title", SECRET) + b"--b0undary--\r\n", "other"),
    "truncated": mp(part("title", SECRET)),
    "truncated_in_value": mp(
        b'--b0undary\r\nContent-Disposition: form-data; name="title"\r\n\r\n' + SECRET
    ),
    "header_without_colon": mp(
        b"--b0undary\r\nContent-Disposition form-data\r\n\r\n" + SECRET + b"\r\n--b0undary--"
    ),
    "no_disposition": mp(
        b"--b0undary\r\nContent-Type: text/plain\r\n\r\n" + SECRET + b"\r\n--b0undary--"
    ),
    "no_headers": mp(b"--b0undary\r\n\r\n" + SECRET + b"\r\n--b0undary--"),
    "name_star": mp(part("x", SECRET, "; name*=UTF-8''title") + b"--b0undary--"),
    "duplicate_name": mp(part("x", SECRET, '; name="title"') + b"--b0undary--"),
    "two_dispositions": mp(
        b'--b0undary\r\nContent-Disposition: form-data; name="x"\r\n'
        b'Content-Disposition: form-data; name="title"\r\n\r\n' + SECRET + b"\r\n--b0undary--"
    ),
    "quote_in_name": mp(part('ti"tle', SECRET) + b"--b0undary--"),
    "padding_after_boundary": mp(
        b"--b0undary  \r\n" + part("title", SECRET)[12:] + b"--b0undary--"
    ),
    "preamble": mp(b"hello\r\n" + part("title", SECRET) + b"--b0undary--"),
    "bare_lf_headers": mp(b'--b0undary\nContent-Disposition: form-data; name="title"\n\n' + SECRET),
    "huge_part_header": mp(
        b"--b0undary\r\nX-Pad: " + b"a" * MAX_PART_HEADER + b"\r\n" + part("title", SECRET)[12:]
    ),
    "too_many_parts": mp(
        part("a", b"1") * (MAX_PARTS + 1) + part("title", SECRET) + b"--b0undary--"
    ),
    "base64_encoded_part": mp(
        part("title", SECRET, "\r\nContent-Transfer-Encoding: base64") + b"--b0undary--"
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_is_400_and_reaches_nobody(
    egw: AuthGw, store_upstream: Store, case: str
) -> None:
    body, headers = MALFORMED[case]
    invalid_before = sample(
        "gateway_crypto_operations_total", {"op": "encrypt", "result": "invalid"}
    )
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(egw.url + "/upload/bad", data=body, headers=headers) as r:
            assert r.status == 400, case
            assert await r.json() == {"error": "bad_request"}
    assert store_upstream.hits == [] and store_upstream.bodies == {}
    assert (
        sample("gateway_crypto_operations_total", {"op": "encrypt", "result": "invalid"})
        == invalid_before + 1
    )
    events = [json.loads(e) for e in await egw.gw.services["store"].audit_tail(20)]
    failed = [e for e in events if e["event"] == "encrypt.failed"]
    assert len(failed) == 1 and failed[0]["user"] == "alice" and failed[0]["rule"] == "upload"
    assert "PLAIN-SECRET" not in json.dumps(events)


async def test_text_field_over_token_limit_is_400(egw: AuthGw, store_upstream: Store) -> None:
    body, headers = mp(part("title", b"x" * (64 * 1024 + 1)) + b"--b0undary--\r\n")
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(egw.url + "/upload/big", data=body, headers=headers) as r:
            assert r.status == 400
    assert store_upstream.hits == []


async def test_body_over_max_is_413(egw: AuthGw, store_upstream: Store) -> None:
    # max_body is 1 MiB in these tests; a chunked upload past it is cut off.
    async def chunks():
        yield b'--b0undary\r\nContent-Disposition: form-data; name="doc"; filename="f"\r\n\r\n'
        for _ in range(40):
            yield b"z" * 65536

    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(
            egw.url + "/upload/huge",
            data=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
        ) as r:
            assert r.status == 413
    assert "huge" not in store_upstream.bodies


async def test_multipart_on_json_rule_is_415(egw: AuthGw, store_upstream: Store) -> None:
    body, headers = mp(part("note", SECRET) + b"--b0undary--\r\n")
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(egw.url + "/json/x", data=body, headers=headers) as r:
            assert r.status == 415
    assert store_upstream.hits == []


# -- large bodies: streamed, not buffered ------------------------------------------------------

MIB = 1 << 20
BIG = 64 * MIB
MARKER = b"PLAINTEXT-MARKER-"
ALLOWED_GROWTH = 40 * MIB


@dataclass
class Received:
    parts: dict[str, dict[str, object]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


def streaming_app(received: Received, datakeys: list) -> web.Application:
    """An upstream that reads multipart with aiohttp's own reader, part by part, never whole;
    it decrypts envelope parts with the crypto module and hashes what came out."""

    async def handler(request: web.Request) -> web.Response:
        try:
            reader = await request.multipart()
            async for item in reader:
                assert isinstance(item, BodyPartReader)
                info: dict[str, object] = {"type": item.headers.get("Content-Type")}
                digest, size, tail, marker = hashlib.sha256(), 0, b"", False
                buf = bytearray()
                dec = None
                while chunk := await item.read_chunk(256 * 1024):
                    marker = marker or MARKER in tail + chunk
                    tail = chunk[-len(MARKER) :]
                    if info["type"] != ENVELOPE_CONTENT_TYPE:
                        digest.update(chunk)
                        size += len(chunk)
                        continue
                    if dec is None:
                        buf += chunk
                        header = parse_header(buf)
                        if header is None:
                            continue
                        key = await datakeys[0].get("user:alice", header.key_version)
                        dec = EnvelopeDecryptor(key, "user:alice", header)
                        info["inner_type"] = header.content_type
                        chunk, buf = bytes(buf[header.length :]), bytearray()
                    out = dec.update(chunk)
                    digest.update(out)
                    size += len(out)
                if dec is not None:
                    out = dec.finish()
                    digest.update(out)
                    size += len(out)
                info.update(sha256=digest.hexdigest(), size=size, marker_seen=marker)
                received.parts[item.name or ""] = info
        except Exception as exc:  # noqa: BLE001 - recorded for the test to assert on
            received.failed.append(type(exc).__name__)
            raise
        return web.Response(status=204)

    app = web.Application(client_max_size=0)
    app.router.add_post("/{tail:.*}", handler)
    return app


@pytest.fixture
async def big_egw(tmp_path: Path) -> AsyncIterator[tuple[AuthGw, Received]]:
    received = Received()
    datakeys: list = []
    up, url = await serve(streaming_app(received, datakeys))
    overrides = write_setup(tmp_path)
    overrides["max_body"] = "80MiB"
    overrides["upstream"] = {"url": url, "timeout": "30s", "connect_timeout": "1s"}
    config = auth_config(url, tmp_path, **overrides)
    agw = await launch(config)
    datakeys.append(agw.gw.services["datakeys"])
    await agw.add_user("alice")
    yield agw, received
    await agw.runner.cleanup()
    await up.cleanup()


def file_chunks(total: int, sent: hashlib._Hash, *, close: bool = True):
    async def gen() -> AsyncIterator[bytes]:
        yield b'--b0undary\r\nContent-Disposition: form-data; name="title"\r\n\r\nbig one\r\n'
        yield (
            b'--b0undary\r\nContent-Disposition: form-data; name="doc"; filename="big.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        block = (MARKER * (65536 // len(MARKER) + 1))[:65536]
        for i in range(total // len(block)):
            chunk = i.to_bytes(8, "big") + block[8:]
            sent.update(chunk)
            yield chunk
        if close:
            yield b"\r\n--b0undary--\r\n"

    return gen()


class PeakRss:
    """Samples this process's RSS from a thread (the event loop is busy streaming)."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def test_large_file_part_streams_with_flat_memory(big_egw) -> None:
    egw, received = big_egw
    sent = hashlib.sha256()
    async with egw.client() as s:
        await egw.login(s, "alice")
        with PeakRss() as rss:
            async with s.post(
                egw.url + "/upload/big",
                data=file_chunks(BIG, sent),
                headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
            ) as r:
                assert r.status == 204, await r.text()
    assert received.failed == []
    doc = received.parts["doc"]
    assert doc["type"] == ENVELOPE_CONTENT_TYPE
    assert doc["inner_type"] == "application/octet-stream"
    assert doc["size"] == BIG and doc["sha256"] == sent.hexdigest()
    assert doc["marker_seen"] is False
    assert received.parts["title"]["type"] is None
    assert rss.peak - rss.start < ALLOWED_GROWTH, (rss.start, rss.peak)


async def test_truncated_large_body_is_400_and_never_complete_upstream(big_egw) -> None:
    egw, received = big_egw
    async with egw.client() as s:
        await egw.login(s, "alice")
        async with s.post(
            egw.url + "/upload/cut",
            data=file_chunks(4 * MIB, hashlib.sha256(), close=False),
            headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
        ) as r:
            assert r.status == 400
            assert await r.json() == {"error": "bad_request"}
    # The upstream saw the start of a chunked body that never ended: its read failed, and the
    # file part never completed.
    for _ in range(100):
        if received.failed:
            break
        await asyncio.sleep(0.02)
    assert received.failed and "doc" not in received.parts
