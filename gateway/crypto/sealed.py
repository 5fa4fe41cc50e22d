"""Small secrets sealed at rest under the keyring (TOTP secrets): seal, open, reseal.

Record (binary):
    0x01 (format) | len(kek_id) u8 | kek_id UTF-8 | nonce (12) | ciphertext+tag
The sealing key is derived from the KEK with HKDF-SHA256 (info names the purpose), so a KEK is
never used directly on user data, and the associated data binds the format, the purpose, the
owner (a user key) and the kek id: a record copied to another user, another purpose, or
relabelled with another kek id fails to open. Every failure is one opaque DecryptError; a kek id
missing from the keyring is a KeyMaterialError (the KEK was removed before `keys rewrap`).
Never logs, never puts plaintext or key bytes in an exception.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.crypto.errors import DecryptError, KeyMaterialError
from gateway.crypto.keyring import Keyring
from gateway.crypto.wrap import kek_header, length_prefixed, read_kek_header

__all__ = ["SEAL_FORMAT", "kek_id_of", "open_sealed", "reseal", "seal"]

SEAL_FORMAT = 1
_NONCE_SIZE = 12
_TAG_SIZE = 16
_LABEL = b"portcullis/sealed/v1\x00"


def _key(kek: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL + purpose.encode("utf-8")
    ).derive(kek)


def _aad(purpose: str, owner: str, kek_id: str) -> bytes:
    return (
        _LABEL
        + bytes([SEAL_FORMAT])
        + length_prefixed(purpose.encode("utf-8"))
        + length_prefixed(owner.encode("utf-8"))
        + length_prefixed(kek_id.encode("utf-8"))
    )


def _parse(record: bytes) -> tuple[str, bytes, bytes]:
    kek_id, start = read_kek_header(record, SEAL_FORMAT)
    if len(record) < start + _NONCE_SIZE + _TAG_SIZE:
        raise DecryptError()
    return kek_id, record[start : start + _NONCE_SIZE], record[start + _NONCE_SIZE :]


def seal(plaintext: bytes, keyring: Keyring, *, purpose: str, owner: str) -> bytes:
    """`plaintext` sealed under the active KEK for (`purpose`, `owner`)."""
    kek_id = keyring.active_id
    nonce = os.urandom(_NONCE_SIZE)
    ct = AESGCM(_key(keyring.active_key, purpose)).encrypt(
        nonce, plaintext, _aad(purpose, owner, kek_id)
    )
    return kek_header(SEAL_FORMAT, kek_id) + nonce + ct


def open_sealed(record: bytes, keyring: Keyring, *, purpose: str, owner: str) -> bytes:
    kek_id, nonce, ct = _parse(record)
    kek = keyring.get(kek_id)
    if kek is None:
        raise KeyMaterialError(f"kek {kek_id!r} is not in the keyring")
    try:
        return AESGCM(_key(kek, purpose)).decrypt(nonce, ct, _aad(purpose, owner, kek_id))
    except (InvalidTag, ValueError):
        raise DecryptError() from None


def kek_id_of(record: bytes) -> str:
    """The kek id a record is sealed under (DecryptError if it is not a sealed record)."""
    return _parse(record)[0]


def reseal(record: bytes, keyring: Keyring, *, purpose: str, owner: str) -> bytes:
    """The record sealed under the active KEK; the same record if it already is."""
    if kek_id_of(record) == keyring.active_id:
        return record
    plain = open_sealed(record, keyring, purpose=purpose, owner=owner)
    return seal(plain, keyring, purpose=purpose, owner=owner)
