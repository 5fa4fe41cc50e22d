"""Whole-body envelopes: round trips at every awkward size, and every way an attacker or a
broken upstream could alter the bytes fails with DecryptError before any forged plaintext."""

from __future__ import annotations

import os
import random

import pytest

from gateway.crypto.envelope import (
    TAG_SIZE,
    EnvelopeDecryptor,
    EnvelopeEncryptor,
    decrypt_envelope,
    encrypt_envelope,
    envelope_length,
    parse_header,
)
from gateway.crypto.errors import DecryptError

KEY = bytes(range(32))
SCOPE = "user:alice"
SEG = 64
CT = "application/json"


def seal(plaintext: bytes, *, key: bytes = KEY, scope: str = SCOPE, version: int = 1) -> bytes:
    return encrypt_envelope(key, scope, version, plaintext, CT, segment_size=SEG)


def split(envelope: bytes) -> tuple[bytes, list[bytes]]:
    header = parse_header(envelope)
    assert header is not None
    body = envelope[header.length :]
    step = SEG + TAG_SIZE
    return envelope[: header.length], [body[i : i + step] for i in range(0, len(body), step)]


def stream_decrypt(envelope: bytes, chunk_sizes: list[int], key: bytes = KEY) -> bytes:
    """Decrypt as the proxy would: header first, then arbitrary chunks."""
    pos = 0
    buf = b""
    header = None
    out = []
    sizes = iter(chunk_sizes)
    while header is None:
        n = next(sizes, 1)
        buf += envelope[pos : pos + n]
        pos += n
        header = parse_header(buf)
        if header is None and pos >= len(envelope):
            raise DecryptError()
    dec = EnvelopeDecryptor(key, SCOPE, header)
    out.append(dec.update(buf[header.length :]))
    while pos < len(envelope):
        n = next(sizes, 4096)
        out.append(dec.update(envelope[pos : pos + n]))
        pos += n
    out.append(dec.finish())
    return b"".join(out)


SIZES = [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG + 7, 10 * SEG]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_at_segment_edges_one_shot(size):
    plaintext = os.urandom(size)
    envelope = seal(plaintext)
    assert len(envelope) == envelope_length(size, CT, SEG)
    assert decrypt_envelope(KEY, SCOPE, envelope) == (CT, plaintext)


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_with_one_byte_chunks_both_ways(size):
    plaintext = os.urandom(size)
    enc = EnvelopeEncryptor(KEY, SCOPE, 1, CT, segment_size=SEG)
    parts = [enc.header()] + [enc.update(plaintext[i : i + 1]) for i in range(size)]
    envelope = b"".join(parts) + enc.finish()
    assert len(envelope) == envelope_length(size, CT, SEG)
    assert stream_decrypt(envelope, [1] * len(envelope)) == plaintext


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_with_random_chunking(seed):
    rng = random.Random(seed)
    size = rng.randrange(0, 12 * SEG)
    plaintext = rng.randbytes(size)
    enc = EnvelopeEncryptor(KEY, SCOPE, 1, CT, segment_size=SEG)
    out, pos = [enc.header()], 0
    while pos < size:
        n = rng.randrange(0, 3 * SEG)
        out.append(enc.update(plaintext[pos : pos + n]))
        pos += n
    envelope = b"".join(out) + enc.finish()
    assert len(envelope) == envelope_length(size, CT, SEG)
    chunks = [rng.randrange(1, 3 * SEG) for _ in range(len(envelope))]
    assert stream_decrypt(envelope, chunks) == plaintext


def test_update_emits_only_whole_segments_and_holds_back_the_possible_last():
    enc = EnvelopeEncryptor(KEY, SCOPE, 1, CT, segment_size=SEG)
    assert enc.update(b"a" * SEG) == b""  # might be the last segment
    assert len(enc.update(b"b")) == SEG + TAG_SIZE
    assert len(enc.finish()) == 1 + TAG_SIZE


def test_decryptor_releases_nothing_before_a_tag_verified():
    envelope = seal(os.urandom(3 * SEG))
    header = parse_header(envelope)
    assert header is not None
    dec = EnvelopeDecryptor(KEY, SCOPE, header)
    body = envelope[header.length :]
    assert dec.update(body[: SEG + TAG_SIZE]) == b""  # complete, but could be the last
    assert len(dec.update(body[SEG + TAG_SIZE : SEG + TAG_SIZE + 1])) == SEG
    assert dec.verified_segments == 1


def test_every_single_bit_flip_fails():
    envelope = seal(os.urandom(2 * SEG + 5))
    for i in range(len(envelope)):
        for bit in (0x01, 0x80):
            forged = bytearray(envelope)
            forged[i] ^= bit
            with pytest.raises(DecryptError):
                decrypt_envelope(KEY, SCOPE, bytes(forged))


def test_truncation_at_every_byte_and_segment_boundary_fails():
    envelope = seal(os.urandom(4 * SEG))
    for cut in range(len(envelope)):
        with pytest.raises(DecryptError):
            decrypt_envelope(KEY, SCOPE, envelope[:cut])


def test_truncation_at_segment_boundary_fails_even_in_streaming_mode():
    plaintext = os.urandom(4 * SEG)
    header, segments = split(seal(plaintext))
    for keep in range(len(segments)):
        with pytest.raises(DecryptError):
            stream_decrypt(header + b"".join(segments[:keep]), [len(header), 7])


def test_appended_bytes_fail():
    envelope = seal(os.urandom(SEG + 3))
    for extra in (b"\x00", os.urandom(TAG_SIZE), os.urandom(SEG + TAG_SIZE)):
        with pytest.raises(DecryptError):
            decrypt_envelope(KEY, SCOPE, envelope + extra)


@pytest.mark.parametrize(
    "rearrange",
    [
        lambda s: [s[1], s[0], *s[2:]],  # swap two segments
        lambda s: [s[0], *s[2:]],  # drop a middle segment
        lambda s: [s[0], s[0], *s[1:]],  # duplicate a segment
        lambda s: s[:-1] + [s[-2]],  # replace the last with a full-size one
        lambda s: list(reversed(s)),
    ],
    ids=["swap", "drop", "duplicate", "last-replaced", "reversed"],
)
def test_reordering_dropping_or_duplicating_segments_fails(rearrange):
    header, segments = split(seal(os.urandom(3 * SEG + 10)))
    with pytest.raises(DecryptError):
        decrypt_envelope(KEY, SCOPE, header + b"".join(rearrange(segments)))


def test_a_segment_spliced_from_another_message_with_the_same_key_fails():
    plaintext = os.urandom(3 * SEG + 10)
    header_a, segs_a = split(seal(plaintext))
    header_b, segs_b = split(seal(plaintext))
    for i in range(len(segs_a)):
        spliced = segs_a[:i] + [segs_b[i]] + segs_a[i + 1 :]
        with pytest.raises(DecryptError):
            decrypt_envelope(KEY, SCOPE, header_a + b"".join(spliced))
    with pytest.raises(DecryptError):
        decrypt_envelope(KEY, SCOPE, header_b + b"".join(segs_a))


def test_wrong_scope_wrong_key_and_wrong_version_fail_before_any_segment():
    envelope = seal(b"secret notes")
    header = parse_header(envelope)
    assert header is not None
    with pytest.raises(DecryptError):
        EnvelopeDecryptor(KEY, "user:mallory", header)
    with pytest.raises(DecryptError):
        EnvelopeDecryptor(os.urandom(32), SCOPE, header)
    other_version = seal(b"secret notes", version=2)
    forged = envelope[:5] + other_version[5:9] + envelope[9:]
    forged_header = parse_header(forged)
    assert forged_header is not None and forged_header.key_version == 2
    with pytest.raises(DecryptError):
        EnvelopeDecryptor(KEY, SCOPE, forged_header)


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (4, b"\x00"),  # format version
        (4, b"\x02"),
        (9, (32).to_bytes(4, "big")),  # segment size downgrade
        (9, (1 << 30).to_bytes(4, "big")),  # absurd segment size
    ],
)
def test_header_field_downgrades_fail(offset, value):
    envelope = seal(os.urandom(2 * SEG))
    forged = envelope[:offset] + value + envelope[offset + len(value) :]
    with pytest.raises(DecryptError):
        decrypt_envelope(KEY, SCOPE, forged)


def test_content_type_swap_fails():
    envelope = seal(b"<p>hi</p>")
    forged = envelope.replace(b"application/json", b"application/xml!")
    assert forged != envelope
    with pytest.raises(DecryptError):
        decrypt_envelope(KEY, SCOPE, forged)


def test_non_envelope_input_is_refused_early():
    with pytest.raises(DecryptError):
        parse_header(b"<html>")
    assert parse_header(b"\xc7G") is None  # could still become an envelope


def test_decryptor_is_poisoned_after_a_failure():
    envelope = bytearray(seal(os.urandom(3 * SEG)))
    header = parse_header(envelope)
    assert header is not None
    envelope[header.length + 3] ^= 1
    dec = EnvelopeDecryptor(KEY, SCOPE, header)
    with pytest.raises(DecryptError):
        dec.update(bytes(envelope[header.length :]))
    with pytest.raises(DecryptError):
        dec.update(b"")
    with pytest.raises(DecryptError):
        dec.finish()


def test_content_type_with_line_breaks_is_refused():
    with pytest.raises(ValueError):
        EnvelopeEncryptor(KEY, SCOPE, 1, "text/html\r\nSet-Cookie: a=b")


def test_two_envelopes_of_the_same_body_differ():
    assert seal(b"same") != seal(b"same")


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 10 * 65536])
def test_envelope_length_matches_the_default_segment_size(size):
    body = b"\x00" * size
    assert len(encrypt_envelope(KEY, SCOPE, 7, body, "text/html")) == envelope_length(
        size, "text/html"
    )
