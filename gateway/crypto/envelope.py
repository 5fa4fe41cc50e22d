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


_INDEX = struct.Struct(">IB")  # segment index, last flag: the nonce after its 7-byte prefix


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + _INDEX.pack(index, 1 if last else 0)


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


class _Segments:
    """Cuts a byte stream into units of `size` bytes, holding back the last one seen (which
    may still be the final unit) until more bytes follow it.

    The held-back bytes (less than one unit, or one whole unit) are kept by reference when the
    caller handed in immutable `bytes`, and copied otherwise: a body read from the network is
    then never copied just to be cut up, only the few bytes that complete a unit across a
    chunk boundary are."""

    __slots__ = ("_held", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._held: memoryview | bytearray = bytearray()

    @property
    def held(self) -> memoryview | bytearray:
        return self._held

    def clear(self) -> None:
        self._held = bytearray()

    def _hold(self, view: memoryview) -> None:
        if not self._held and isinstance(view.obj, bytes):
            self._held = view  # SECURITY: only immutable bytes are kept by reference
        elif isinstance(self._held, bytearray):
            self._held += view  # ours alone: no view of it is handed out while held
        else:
            held = bytearray(self._held)
            held += view
            self._held = held

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[memoryview]:
        """The units completed by `chunk` that are known not to be the final one."""
        view = memoryview(chunk).cast("B")
        size = self._size
        held = self._held
        count = max(0, (len(held) + len(view) - 1) // size)
        if count == 0:
            if view:
                self._hold(view)
            return []
        units: list[memoryview] = []
        if held:
            need = size - len(held)
            # The one copy: a unit that spans chunks is made whole (in place when the held
            # bytes are already our own copy, else in one allocation).
            if need and isinstance(held, bytearray):
                held += view[:need]
            elif need:
                held = b"".join((held, view[:need]))
            units.append(memoryview(held))
            view = view[need:]
            count -= 1
        units.extend(view[i * size : (i + 1) * size] for i in range(count))
        self._held = bytearray()
        rest = view[count * size :]
        if rest:
            self._hold(rest)
        return units


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
        # A full segment is sealed only once more data follows it: it is then not the last.
        self._segments = _Segments(segment_size)
        self._index = 0
        self._done = False

    def header(self) -> bytes:
        return self._header

    def update(self, chunk: bytes | bytearray | memoryview) -> bytearray:
        """Ciphertext of every segment known not to be the last one (possibly empty)."""
        if self._done:
            raise ValueError("encryptor already finished")
        units = self._segments.feed(chunk)
        if not units:
            return bytearray()
        if self._index + len(units) >= _MAX_SEGMENTS:
            raise ValueError("envelope too large for one message")
        step = self._seg + TAG_SIZE
        out = bytearray(len(units) * step)
        slots = memoryview(out)
        seal, prefix, aad, index = self._aead.encrypt_into, self._prefix, self._header, self._index
        for i, unit in enumerate(units):
            seal(prefix + _INDEX.pack(index + i, 0), unit, aad, slots[i * step : (i + 1) * step])
        self._index = index + len(units)
        return out

    def finish(self) -> bytes:
        """The last segment (empty plaintext only if the whole body was empty)."""
        if self._done:
            raise ValueError("encryptor already finished")
        self._done = True
        if self._index >= _MAX_SEGMENTS:
            raise ValueError("envelope too large for one message")
        last = self._segments.held
        out = self._aead.encrypt(_nonce(self._prefix, self._index, True), last, self._header)
        self._index += 1
        self._segments.clear()
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
        # A full-size segment may still be the last one until more bytes follow it.
        self._segments = _Segments(self._ct_seg)
        self._index = 0
        self._done = False
        self._failed = False
        self.header = header

    @property
    def verified_segments(self) -> int:
        """How many segments authenticated so far (the header is authentic once >= 1)."""
        return self._index

    def _check(self) -> None:
        if self._failed or self._done:
            raise DecryptError()

    def update(self, chunk: bytes | bytearray | memoryview) -> bytearray:
        """Plaintext of the segments completed by `chunk` whose tags verified."""
        self._check()
        self._failed = True
        units = self._segments.feed(chunk)
        if not units:
            self._failed = False
            return bytearray()
        if self._index + len(units) >= _MAX_SEGMENTS:
            raise DecryptError()
        plain = self._ct_seg - TAG_SIZE
        # Unverified plaintext may land in `out`, but `out` is only returned once every
        # segment in it verified; on failure it is dropped with the exception.
        out = bytearray(len(units) * plain)
        slots = memoryview(out)
        open_into, prefix, aad, index = (
            self._aead.decrypt_into,
            self._prefix,
            self._aad,
            self._index,
        )
        try:
            for i, unit in enumerate(units):
                open_into(
                    prefix + _INDEX.pack(index + i, 0),
                    unit,
                    aad,
                    slots[i * plain : (i + 1) * plain],
                )
        except InvalidTag:
            raise DecryptError() from None
        self._index = index + len(units)
        self._failed = False
        return out

    def finish(self) -> bytearray:
        """Plaintext of the last segment; DecryptError if it is missing or does not verify."""
        self._check()
        self._failed = True
        last = self._segments.held
        # An empty last segment is only valid as the sole segment (empty body).
        if len(last) < TAG_SIZE or (len(last) == TAG_SIZE and self._index > 0):
            raise DecryptError()
        if self._index >= _MAX_SEGMENTS:
            raise DecryptError()
        out = bytearray(len(last) - TAG_SIZE)
        try:
            self._aead.decrypt_into(_nonce(self._prefix, self._index, True), last, self._aad, out)
        except InvalidTag:
            raise DecryptError() from None
        self._index += 1
        self._segments.clear()
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
