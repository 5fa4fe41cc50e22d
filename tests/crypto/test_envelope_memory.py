"""A 1 GiB body goes through encrypt and decrypt with flat memory: the envelope never buffers
more than a segment, so RSS must not grow with the body."""

from __future__ import annotations

import hashlib
import os

import psutil

from gateway.crypto.envelope import EnvelopeDecryptor, EnvelopeEncryptor, parse_header

GIB = 1 << 30
CHUNK = 256 * 1024 + 17  # deliberately not a multiple of the segment size
ALLOWED_GROWTH = 32 * 1024 * 1024


def test_one_gib_streams_through_with_flat_memory():
    key = os.urandom(32)
    base = os.urandom(CHUNK)
    enc = EnvelopeEncryptor(key, "user:big", 1, "application/octet-stream")
    header = parse_header(enc.header())
    assert header is not None
    dec = EnvelopeDecryptor(key, "user:big", header)
    sent, received = hashlib.sha256(), hashlib.sha256()
    process = psutil.Process()
    start_rss = process.memory_info().rss
    peak_rss = start_rss
    produced = 0
    index = 0
    while produced < GIB:
        # Each chunk differs (index stamped in), so a reordered segment would change the hash.
        chunk = index.to_bytes(8, "big") + base[8 : min(CHUNK, GIB - produced)]
        produced += len(chunk)
        index += 1
        sent.update(chunk)
        received.update(dec.update(enc.update(chunk)))
        if index % 256 == 0:
            peak_rss = max(peak_rss, process.memory_info().rss)
    received.update(dec.update(enc.finish()))
    received.update(dec.finish())
    peak_rss = max(peak_rss, process.memory_info().rss)
    assert produced == GIB
    assert received.digest() == sent.digest()
    assert peak_rss - start_rss < ALLOWED_GROWTH, (start_rss, peak_rss)
