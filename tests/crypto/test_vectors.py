"""The vectors of docs/envelope-format.md: the code must produce them, and so must a rebuild
from the plain primitives that follows only the document's text."""

from __future__ import annotations

import base64
import re
import struct
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.crypto.envelope import EnvelopeEncryptor, decrypt_envelope
from gateway.crypto.keyring import Keyring
from gateway.crypto.token import open_field, seal_field
from gateway.crypto.wrap import unwrap_key, wrap_key

DOC = Path(__file__).resolve().parents[2] / "docs" / "envelope-format.md"
DATA_KEY = bytes(range(32))
SCOPE = "user:alice"
SALT = bytes(range(0x40, 0x60))
PREFIX = bytes(range(0xA0, 0xA7))
CONTENT_TYPE = "text/plain; charset=utf-8"
PLAINTEXT = b"Portcullis streaming envelope, 3 segs!"
HEADER = (
    "c7475745010000000100000010404142434445464748494a4b4c4d4e4f505152"
    "535455565758595a5b5c5d5e5fa0a1a2a3a4a5a60019746578742f706c61696e"
    "3b20636861727365743d7574662d3855f1b1e2ca3a41490e49a152854125a1de"
    "6d614601718fc4c5133bcf46b61be2"
)
SEGMENTS = (
    "871acc59bbd9ffe9640e631486057b2becc7eb87d136a19cf161f25d3f325453"
    "08d163caf22050b1737926657fa5d050c634e19b46408eb2d55f7045c13c982b"
    "9701088506353a0b712858d7c6588c0882211227fde0"
)
EMPTY_SEGMENT = "b74160fe436714d8932679f83207b123"
TOKEN_NONCE = bytes(range(0xC0, 0xCC))
TOKEN = "gwe1.AQAAAAHxycKjwMHCw8TFxsfIycrLZIBqVEKvaLyISjk2kqQ3WuEpybnG_77H5muv6Fc"
KEK = bytes(range(0x80, 0xA0))
WRAP_NONCE = bytes(range(0xD0, 0xDC))
WRAPPED = (
    "01026b31d0d1d2d3d4d5d6d7d8d9dadba09aae519cb4387ea82282291d58de29"
    "3be550172b1f0fe29ce940ce075851673b473a8d314566105a47f65e0bd57552"
)


def _lp16(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _encrypt(plaintext: bytes) -> tuple[bytes, bytes]:
    enc = EnvelopeEncryptor(
        DATA_KEY, SCOPE, 1, CONTENT_TYPE, segment_size=16, _salt=SALT, _nonce_prefix=PREFIX
    )
    return enc.header(), enc.update(plaintext) + enc.finish()


def test_envelope_vector_is_reproduced():
    header, segments = _encrypt(PLAINTEXT)
    assert header.hex() == HEADER
    assert segments.hex() == SEGMENTS
    assert decrypt_envelope(DATA_KEY, SCOPE, header + segments) == (CONTENT_TYPE, PLAINTEXT)


def test_empty_envelope_vector_is_one_empty_last_segment():
    header, segments = _encrypt(b"")
    assert header.hex() == HEADER
    assert segments.hex() == EMPTY_SEGMENT


def test_envelope_vector_rebuilt_from_the_document_alone():
    info = b"portcullis/envelope/v1\x00\x01" + _lp16(SCOPE.encode()) + struct.pack(">II", 1, 16)
    okm = HKDF(hashes.SHA256(), 64, SALT, info).derive(DATA_KEY)
    ct = CONTENT_TYPE.encode()
    header = b"\xc7GWE\x01" + struct.pack(">II", 1, 16) + SALT + PREFIX + _lp16(ct) + okm[32:]
    assert header.hex() == HEADER
    aead = AESGCM(okm[:32])
    parts = [PLAINTEXT[0:16], PLAINTEXT[16:32], PLAINTEXT[32:]]
    segments = b"".join(
        aead.encrypt(PREFIX + struct.pack(">IB", i, i == 2), part, header)
        for i, part in enumerate(parts)
    )
    assert segments.hex() == SEGMENTS


def test_token_vector_is_reproduced_and_rebuilt():
    assert seal_field(DATA_KEY, SCOPE, 1, b"hello <world>", _nonce=TOKEN_NONCE) == TOKEN
    assert open_field(DATA_KEY, SCOPE, 1, TOKEN) == b"hello <world>"
    binding = b"portcullis/token/v1\x00\x01" + _lp16(SCOPE.encode()) + struct.pack(">I", 1)
    okm = HKDF(hashes.SHA256(), 36, None, binding).derive(DATA_KEY)
    head = b"\x01" + struct.pack(">I", 1) + okm[32:]
    ct = AESGCM(okm[:32]).encrypt(TOKEN_NONCE, b"hello <world>", binding + head)
    rebuilt = "gwe1." + base64.urlsafe_b64encode(head + TOKEN_NONCE + ct).decode().rstrip("=")
    assert rebuilt == TOKEN


def test_wrapped_key_vector_is_reproduced_and_rebuilt():
    keyring = Keyring({"k1": KEK}, "k1")
    assert wrap_key(DATA_KEY, keyring, SCOPE, 1, _nonce=WRAP_NONCE).hex() == WRAPPED
    assert unwrap_key(bytes.fromhex(WRAPPED), keyring, SCOPE, 1) == DATA_KEY
    aad = b"portcullis/wrap/v1\x00\x01" + _lp16(SCOPE.encode()) + struct.pack(">I", 1)
    aad += _lp16(b"k1")
    rebuilt = b"\x01\x02k1" + WRAP_NONCE + AESGCM(KEK).encrypt(WRAP_NONCE, DATA_KEY, aad)
    assert rebuilt.hex() == WRAPPED


def test_document_carries_the_same_vectors():
    doc = DOC.read_text()
    flat = re.sub(r"\s+", "", doc)
    for value in (HEADER, SEGMENTS, EMPTY_SEGMENT, TOKEN, WRAPPED):
        assert value in flat
