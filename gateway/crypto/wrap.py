"""Wrapping of 32-byte data keys under a KEK (AES-256-GCM), and rewrapping to the active KEK.

Record (binary, see docs/envelope-format.md):
    0x01 (format) | len(kek_id) u8 | kek_id UTF-8 | nonce (12) | ciphertext+tag (48)
Associated data binds the format, the scope, the data-key version and the kek id, so a record
copied to another scope or version, or relabelled with another kek id, fails to unwrap.
Every unwrap failure is one opaque DecryptError. Never logs.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.crypto.errors import DecryptError, KeyMaterialError
from gateway.crypto.keyring import Keyring

__all__ = [
    "DATA_KEY_SIZE",
    "WRAP_FORMAT",
    "WrappedKey",
    "kek_header",
    "length_prefixed",
    "read_kek_header",
    "rewrap",
    "unwrap_key",
    "wrap_aad",
    "wrap_key",
]

WRAP_FORMAT = 1
DATA_KEY_SIZE = 32
_NONCE_SIZE = 12
_CT_SIZE = DATA_KEY_SIZE + 16
_AAD_LABEL = b"portcullis/wrap/v1\x00"
_MAX_VERSION = 0xFFFFFFFF


def length_prefixed(data: bytes) -> bytes:
    """`data` after its length as a big-endian u16 (a field of associated data)."""
    return struct.pack(">H", len(data)) + data


def kek_header(record_format: int, kek_id: str) -> bytes:
    """The start of every record sealed under a KEK (wrapped keys, sealed secrets):
    format | len(kek_id) u8 | kek_id UTF-8."""
    kid = kek_id.encode("utf-8")
    return bytes([record_format, len(kid)]) + kid


def read_kek_header(record: bytes, record_format: int) -> tuple[str, int]:
    """(kek id, offset of what follows) of a record starting with `kek_header`; a record that
    does not is a DecryptError."""
    if len(record) < 2 or record[0] != record_format:
        raise DecryptError()
    end = 2 + record[1]
    if len(record) < end:
        raise DecryptError()
    try:
        return record[2:end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise DecryptError() from None


def wrap_aad(scope: str, version: int, kek_id: str) -> bytes:
    """Associated data of a wrapped key: label, format, scope, version, kek id."""
    if not 0 < version <= _MAX_VERSION:
        raise ValueError("data-key version must be in 1..2**32-1")
    return (
        _AAD_LABEL
        + bytes([WRAP_FORMAT])
        + length_prefixed(scope.encode("utf-8"))
        + struct.pack(">I", version)
        + length_prefixed(kek_id.encode("utf-8"))
    )


@dataclass(frozen=True, slots=True)
class WrappedKey:
    kek_id: str
    nonce: bytes
    ciphertext: bytes

    def to_bytes(self) -> bytes:
        return kek_header(WRAP_FORMAT, self.kek_id) + self.nonce + self.ciphertext

    @classmethod
    def from_bytes(cls, record: bytes) -> WrappedKey:
        """Parse a record; malformed input is a DecryptError."""
        kek_id, start = read_kek_header(record, WRAP_FORMAT)
        if len(record) != start + _NONCE_SIZE + _CT_SIZE:
            raise DecryptError()
        return cls(
            kek_id=kek_id,
            nonce=bytes(record[start : start + _NONCE_SIZE]),
            ciphertext=bytes(record[start + _NONCE_SIZE :]),
        )


def wrap_key(
    data_key: bytes,
    keyring: Keyring,
    scope: str,
    version: int,
    *,
    _nonce: bytes | None = None,
) -> bytes:
    """Wrap `data_key` under the keyring's active KEK. `_nonce` is for test vectors only."""
    if len(data_key) != DATA_KEY_SIZE:
        raise ValueError("a data key is 32 bytes")
    nonce = os.urandom(_NONCE_SIZE) if _nonce is None else _nonce
    if len(nonce) != _NONCE_SIZE:
        raise ValueError("nonce must be 12 bytes")
    kek_id = keyring.active_id
    ct = AESGCM(keyring.active_key).encrypt(nonce, data_key, wrap_aad(scope, version, kek_id))
    return WrappedKey(kek_id, nonce, ct).to_bytes()


def unwrap_key(record: bytes, keyring: Keyring, scope: str, version: int) -> bytes:
    """The data key inside `record`; DecryptError if it is not exactly what was wrapped for
    this scope and version. A kek id missing from the keyring is a KeyMaterialError (an
    operator error: the KEK was removed before `keys rewrap` finished)."""
    wrapped = WrappedKey.from_bytes(record)
    kek = keyring.get(wrapped.kek_id)
    if kek is None:
        raise KeyMaterialError(f"kek {wrapped.kek_id!r} is not in the keyring")
    try:
        aad = wrap_aad(scope, version, wrapped.kek_id)
        return AESGCM(kek).decrypt(wrapped.nonce, wrapped.ciphertext, aad)
    except (InvalidTag, ValueError):
        raise DecryptError() from None


def rewrap(record: bytes, keyring: Keyring, scope: str, version: int) -> bytes:
    """The record re-wrapped under the active KEK; the same record if it already is."""
    if WrappedKey.from_bytes(record).kek_id == keyring.active_id:
        return record
    return wrap_key(unwrap_key(record, keyring, scope, version), keyring, scope, version)
