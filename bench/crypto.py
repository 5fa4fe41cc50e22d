"""Crypto throughput: streaming envelopes next to raw AES-256-GCM on the same buffers, and token
replacement in an HTML page. Prints figures; not a test.

    python bench/crypto.py
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from gateway.crypto.envelope import (  # noqa: E402
    EnvelopeDecryptor,
    EnvelopeEncryptor,
    parse_header,
)
from gateway.crypto.stream_tokens import (  # noqa: E402
    TokenReplacer,
    context_for,
    escape_html,
)
from gateway.crypto.token import make_opener, seal_field  # noqa: E402

MIB = 1024 * 1024
CHUNK = 64 * 1024  # what a proxy typically reads per iteration
KEY = os.urandom(32)
SCOPE = "user:bench"


def best(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up (page faults, allocator)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def envelope_encrypt(data: memoryview, chunk: int) -> int:
    """Encrypt as a proxy does: each piece is written out (here: counted) and released."""
    enc = EnvelopeEncryptor(KEY, SCOPE, 1, "application/octet-stream")
    total = len(enc.header())
    for i in range(0, len(data), chunk):
        total += len(enc.update(data[i : i + chunk]))
    return total + len(enc.finish())


def envelope_decrypt(envelope: memoryview, chunk: int) -> int:
    header = parse_header(envelope[:4096])
    assert header is not None
    dec = EnvelopeDecryptor(KEY, SCOPE, header)
    total = 0
    for i in range(header.length, len(envelope), chunk):
        total += len(dec.update(envelope[i : i + chunk]))
    return total + len(dec.finish())


def bench_envelope(size: int, repeat: int) -> None:
    data = memoryview(os.urandom(size))
    aead = AESGCM(KEY)
    nonce = os.urandom(12)
    raw_ct = aead.encrypt(nonce, data, None)
    enc = EnvelopeEncryptor(KEY, SCOPE, 1, "application/octet-stream")
    envelope = memoryview(enc.header() + enc.update(data) + enc.finish())
    mb = size / 1e6
    raw_enc = mb / best(lambda: aead.encrypt(nonce, data, None), repeat)
    raw_dec = mb / best(lambda: aead.decrypt(nonce, raw_ct, None), repeat)
    label = f"{size // MIB} MiB"
    print(
        f"  {label}: raw AESGCM one-shot  encrypt {raw_enc:6.0f} MB/s  decrypt {raw_dec:6.0f} MB/s"
    )
    for name, chunk in (("64 KiB chunks", CHUNK), ("one update", size + 4096)):
        env_enc = mb / best(lambda c=chunk: envelope_encrypt(data, c), repeat)
        env_dec = mb / best(lambda c=chunk: envelope_decrypt(envelope, c), repeat)
        print(
            f"  {label}: envelope {name:<14} encrypt {env_enc:6.0f} MB/s ({env_enc / raw_enc:4.0%})"
            f"  decrypt {env_dec:6.0f} MB/s ({env_dec / raw_dec:4.0%})"
        )


def html_page(tokens: list[str], size: int) -> bytes:
    filler = b"<p>" + b"Lorem ipsum dolor sit amet, consectetur adipiscing. " * 4 + b"</p>\n"
    parts = []
    per_token = size // len(tokens)
    for token in tokens:
        block = (filler * (per_token // len(filler) + 1))[: per_token - len(token) - 20]
        parts.append(block + b'<td class="n">' + token.encode() + b"</td>")
    return b"<html><body>" + b"".join(parts) + b"</body></html>"


def bench_tokens(repeat: int) -> None:
    tokens = [seal_field(KEY, SCOPE, 1, f"note {i} <b>secret</b>".encode()) for i in range(100)]
    page = html_page(tokens, 50 * 1024)
    opener = make_opener(SCOPE, {1: KEY})

    def replace_page(html_context: bool = True) -> int:
        context = context_for("text/html; charset=utf-8") if html_context else None
        replacer = TokenReplacer(opener, escape_html, context)
        for i in range(0, len(page), 8192):
            replacer.feed(page[i : i + 8192])
        replacer.finish()
        assert replacer.counts.replaced == 100
        return replacer.counts.replaced

    def scan_only() -> None:
        replacer = TokenReplacer(lambda _t: None, escape_html, context_for("text/html"))
        for i in range(0, len(page), 8192):
            replacer.feed(page[i : i + 8192])
        replacer.finish()

    per_page = best(replace_page, repeat)
    no_context = best(lambda: replace_page(False), repeat)
    scan = best(scan_only, repeat)
    seal = best(lambda: [seal_field(KEY, SCOPE, 1, b"note") for _ in range(1000)], 3) / 1000
    print(
        f"  {len(page) / 1024:.0f} KiB HTML page, 100 tokens: {per_page * 1e3:.2f} ms/page, "
        f"{100 / per_page:,.0f} tokens/s replaced ({scan * 1e3:.2f} ms of it scanning; "
        f"{no_context * 1e3:.2f} ms without the HTML context, as for JSON)"
    )
    print(f"  seal_field: {1 / seal:,.0f} tokens/s")


def main() -> None:
    cpus = os.cpu_count()
    print(f"crypto bench (python {sys.version.split()[0]}, {cpus} CPUs, 64 KiB segments)")
    bench_envelope(1 * MIB, repeat=30)
    bench_envelope(64 * MIB, repeat=5)
    bench_tokens(repeat=50)


if __name__ == "__main__":
    main()
