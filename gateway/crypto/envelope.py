"""Whole-body streaming envelopes: segmented AES-256-GCM in the style of Tink's AES-GCM-HKDF.

A body becomes `header || segment_0 || ... || segment_n` (layout in docs/envelope-format.md).
Each message gets its own AES key and a key-commitment value from HKDF-SHA256 over the data key,
a random 32-byte salt and an info string binding the scope, key version and segment size. Each
segment is AES-GCM with nonce `nonce_prefix(7) || index(4, BE) || last(1)` and the whole header
as associated data, so truncation, reordering, splicing between messages and header downgrades
all fail. The final segment is the only one with the last flag set; it is empty only when the
whole plaintext is empty.

Both directions are incremental and hold at most one segment, so memory stays flat. The
decryptor releases a segment's plaintext only after its tag verified; every failure is one
opaque DecryptError. Never logs, never imports aiohttp.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.crypto.errors import DecryptError

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "ENVELOPE_CONTENT_TYPE",
    "FORMAT_VERSION",
    "MAGIC",
    "EnvelopeDecryptor",
    "EnvelopeEncryptor",
    "EnvelopeHeader",
    "decrypt_envelope",
    "encrypt_envelope",
    "envelope_length",
    "header_length",
    "parse_header",
]

MAGIC = b"\xc7GWE"
FORMAT_VERSION = 1
ENVELOPE_CONTENT_TYPE = "application/vnd.portcullis.envelope"
DEFAULT_SEGMENT_SIZE = 64 * 1024
MIN_SEGMENT_SIZE = 16
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
MAX_CONTENT_TYPE = 1024
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
COMMITMENT_SIZE = 32
TAG_SIZE = 16
_MAX_SEGMENTS = 1 << 32
_KDF_LABEL = b"portcullis/envelope/v1\x00"
# magic | format u8 | key_version u32 | segment_size u32 | salt | nonce_prefix | ct_len u16
_FIXED = struct.Struct(f">4sBII{SALT_SIZE}s{NONCE_PREFIX_SIZE}sH")


def header_length(content_type: str) -> int:
    return _FIXED.size + len(content_type.encode("ascii")) + COMMITMENT_SIZE


def _segments(plaintext_len: int, segment_size: int) -> int:
    return max(1, -(-plaintext_len // segment_size))


def envelope_length(
    plaintext_len: int, content_type: str = "", segment_size: int = DEFAULT_SEGMENT_SIZE
) -> int:
    """Exact length of the envelope of `plaintext_len` bytes (for Content-Length)."""
    if plaintext_len < 0:
        raise ValueError("plaintext length is negative")
    n = _segments(plaintext_len, segment_size)
    return header_length(content_type) + plaintext_len + n * TAG_SIZE


def _check_content_type(content_type: str) -> bytes:
    raw = content_type.encode("ascii", errors="replace")
    # SECURITY: the content type is restored into a response header: no CR/LF or controls.
    if len(raw) > MAX_CONTENT_TYPE or any(b < 0x20 or b > 0x7E for b in raw):
        raise ValueError("content type must be printable ASCII, at most 1024 bytes")
    return raw


def _derive(
    data_key: bytes, salt: bytes, scope: str, key_version: int, segment_size: int
) -> tuple[bytes, bytes]:
    """(per-message AES key, key commitment) from HKDF-SHA256."""
    info = (
        _KDF_LABEL
        + bytes([FORMAT_VERSION])
        + struct.pack(">H", len(scope.encode("utf-8")))
        + scope.encode("utf-8")
        + struct.pack(">II", key_version, segment_size)
    )
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=info).derive(data_key)
    return okm[:32], okm[32:]


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """A parsed header. Its fields are authenticated only once a segment verified."""

    key_version: int
    segment_size: int
    salt: bytes
    nonce_prefix: bytes
    content_type: str
    commitment: bytes
    raw: bytes
    format_version: int = FORMAT_VERSION

    @property
    def length(self) -> int:
        return len(self.raw)


def parse_header(data: bytes | bytearray | memoryview) -> EnvelopeHeader | None:
    """The header at the start of `data`, or None if more bytes are needed.

    Raises DecryptError when the bytes cannot be an envelope header of a known format.
    """
    view = memoryview(data)
    if len(view) < len(MAGIC):
        if bytes(view) != MAGIC[: len(view)]:
            raise DecryptError()
        return None
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise DecryptError()
    if len(view) < _FIXED.size:
        if len(view) > len(MAGIC) and view[len(MAGIC)] != FORMAT_VERSION:
            raise DecryptError()
        return None
    magic, fmt, key_version, seg, salt, prefix, ct_len = _FIXED.unpack_from(view)
    if fmt != FORMAT_VERSION or not MIN_SEGMENT_SIZE <= seg <= MAX_SEGMENT_SIZE:
        raise DecryptError()
    if ct_len > MAX_CONTENT_TYPE:
        raise DecryptError()
    total = _FIXED.size + ct_len + COMMITMENT_SIZE
    if len(view) < total:
        return None
    ct_raw = bytes(view[_FIXED.size : _FIXED.size + ct_len])
    if any(b < 0x20 or b > 0x7E for b in ct_raw):
        raise DecryptError()
    return EnvelopeHeader(
        key_version=key_version,
        segment_size=seg,
        salt=salt,
        nonce_prefix=prefix,
        content_type=ct_raw.decode("ascii"),
        commitment=bytes(view[total - COMMITMENT_SIZE : total]),
        raw=bytes(view[:total]),
    )


class EnvelopeEncryptor:
    """Incremental encryption of one body. Write `header()` first, then every `update()`
    output, then `finish()`. Holds at most one segment of plaintext."""

    def __init__(
        self,
        data_key: bytes,
        scope: str,
        key_version: int,
        content_type: str = "",
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        _salt: bytes | None = None,
        _nonce_prefix: bytes | None = None,
    ) -> None:
        if len(data_key) != 32:
            raise ValueError("a data key is 32 bytes")
        if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError("segment size out of range")
        if not 0 <= key_version <= 0xFFFFFFFF:
            raise ValueError("key version must fit in 32 bits")
        ct_raw = _check_content_type(content_type)
        salt = os.urandom(SALT_SIZE) if _salt is None else _salt
        prefix = os.urandom(NONCE_PREFIX_SIZE) if _nonce_prefix is None else _nonce_prefix
        if len(salt) != SALT_SIZE or len(prefix) != NONCE_PREFIX_SIZE:
            raise ValueError("bad salt or nonce prefix length")
        key, commitment = _derive(data_key, salt, scope, key_version, segment_size)
        fixed = _FIXED.pack(
            MAGIC, FORMAT_VERSION, key_version, segment_size, salt, prefix, len(ct_raw)
        )
        self._header = fixed + ct_raw + commitment
        self._aead = AESGCM(key)
        self._prefix = prefix
        self._seg = segment_size
        self._buf = bytearray()
        self._index = 0
        self._done = False

    def header(self) -> bytes:
        return self._header

    def _seal_into(self, data: bytes | bytearray | memoryview, out: memoryview) -> None:
        if self._index >= _MAX_SEGMENTS:
            raise ValueError("envelope too large for one message")
        nonce = _nonce(self._prefix, self._index, False)
        self._index += 1
        self._aead.encrypt_into(nonce, data, self._header, out)

    def update(self, chunk: bytes | bytearray | memoryview) -> bytearray:
        """Ciphertext of every segment known not to be the last one (possibly empty)."""
        if self._done:
            raise ValueError("encryptor already finished")
        view = memoryview(chunk).cast("B")
        seg = self._seg
        # A full segment is sealed only once more data follows it: it is then not the last.
        count = max(0, (len(self._buf) + len(view) - 1) // seg)
        if count == 0:
            self._buf += view
            return bytearray()
        out = bytearray(count * (seg + TAG_SIZE))
        slots = memoryview(out)
        if self._buf:
            need = seg - len(self._buf)
            self._buf += view[:need]
            view = view[need:]
            self._seal_into(self._buf, slots[: seg + TAG_SIZE])
            slots = slots[seg + TAG_SIZE :]
            self._buf.clear()
        while slots:
            self._seal_into(view[:seg], slots[: seg + TAG_SIZE])
            slots = slots[seg + TAG_SIZE :]
            view = view[seg:]
        self._buf += view
        return out

    def finish(self) -> bytes:
        """The last segment (empty plaintext only if the whole body was empty)."""
        if self._done:
            raise ValueError("encryptor already finished")
        self._done = True
        if self._index >= _MAX_SEGMENTS:
            raise ValueError("envelope too large for one message")
        out = self._aead.encrypt(_nonce(self._prefix, self._index, True), self._buf, self._header)
        self._index += 1
        self._buf.clear()
        return out


class EnvelopeDecryptor:
    """Incremental decryption of the segments after a parsed header.

    `update()` returns plaintext of segments whose tag verified; `finish()` verifies the last
    segment. Any failure raises DecryptError and poisons the decryptor. Construction already
    checks the key commitment, so a wrong key, scope or version fails before any segment.
    """

    def __init__(self, data_key: bytes, scope: str, header: EnvelopeHeader) -> None:
        self._failed = True
        if len(data_key) != 32:
            raise DecryptError()
        key, commitment = _derive(
            data_key, header.salt, scope, header.key_version, header.segment_size
        )
        if not hmac.compare_digest(commitment, header.commitment):
            raise DecryptError()
        self._aead = AESGCM(key)
        self._aad = header.raw
        self._prefix = header.nonce_prefix
        self._ct_seg = header.segment_size + TAG_SIZE
        self._buf = bytearray()
        self._index = 0
        self._done = False
        self._failed = False
        self.header = header

    @property
    def verified_segments(self) -> int:
        """How many segments authenticated so far (the header is authentic once >= 1)."""
        return self._index

    def _open_into(
        self, data: bytes | bytearray | memoryview, last: bool, out: memoryview | bytearray
    ) -> None:
        if self._index >= _MAX_SEGMENTS:
            raise DecryptError()
        nonce = _nonce(self._prefix, self._index, last)
        try:
            self._aead.decrypt_into(nonce, data, self._aad, out)
        except InvalidTag:
            raise DecryptError() from None
        self._index += 1

    def _check(self) -> None:
        if self._failed or self._done:
            raise DecryptError()

    def update(self, chunk: bytes | bytearray | memoryview) -> bytearray:
        """Plaintext of the segments completed by `chunk` whose tags verified."""
        self._check()
        self._failed = True
        view = memoryview(chunk).cast("B")
        seg = self._ct_seg
        plain = seg - TAG_SIZE
        # A full-size segment may still be the last one until more bytes follow it.
        count = max(0, (len(self._buf) + len(view) - 1) // seg)
        if count == 0:
            self._buf += view
            self._failed = False
            return bytearray()
        # Unverified plaintext may land in `out`, but `out` is only returned once every
        # segment in it verified; on failure it is dropped with the exception.
        out = bytearray(count * plain)
        slots = memoryview(out)
        if self._buf:
            need = seg - len(self._buf)
            self._buf += view[:need]
            view = view[need:]
            self._open_into(self._buf, False, slots[:plain])
            slots = slots[plain:]
            self._buf.clear()
        while slots:
            self._open_into(view[:seg], False, slots[:plain])
            slots = slots[plain:]
            view = view[seg:]
        self._buf += view
        self._failed = False
        return out

    def finish(self) -> bytearray:
        """Plaintext of the last segment; DecryptError if it is missing or does not verify."""
        self._check()
        self._failed = True
        # An empty last segment is only valid as the sole segment (empty body).
        if len(self._buf) < TAG_SIZE or (len(self._buf) == TAG_SIZE and self._index > 0):
            raise DecryptError()
        out = bytearray(len(self._buf) - TAG_SIZE)
        self._open_into(self._buf, True, out)
        self._buf.clear()
        self._failed = False
        self._done = True
        return out


def encrypt_envelope(
    data_key: bytes,
    scope: str,
    key_version: int,
    plaintext: bytes,
    content_type: str = "",
    *,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> bytes:
    """One-shot envelope of a small body."""
    enc = EnvelopeEncryptor(data_key, scope, key_version, content_type, segment_size=segment_size)
    return b"".join((enc.header(), enc.update(plaintext), enc.finish()))


def decrypt_envelope(data_key: bytes, scope: str, envelope: bytes) -> tuple[str, bytes]:
    """One-shot (content type, plaintext) of a small envelope."""
    header = parse_header(envelope)
    if header is None:
        raise DecryptError()
    dec = EnvelopeDecryptor(data_key, scope, header)
    body = dec.update(memoryview(envelope)[header.length :])
    body += dec.finish()
    return header.content_type, bytes(body)
