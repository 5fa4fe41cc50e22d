"""The named errors of the crypto recipes.

Every failure to open, unwrap or decrypt is one opaque `DecryptError`: its message never says
which check failed, and no message in this package ever contains key material or plaintext.
The web layer maps these classes to answers (DecryptError on a body -> 502, FieldError -> 400,
KeyMaterialError at start-up -> exit 2).
"""

from __future__ import annotations

__all__ = [
    "CryptoError",
    "DecryptError",
    "FieldError",
    "KeyMaterialError",
    "KeyNotFound",
]


class CryptoError(Exception):
    """Base class of the crypto package's errors."""


class DecryptError(CryptoError):
    """Ciphertext could not be opened (tampered, truncated, wrong key or scope). Opaque."""

    def __init__(self, message: str = "decryption failed") -> None:
        super().__init__(message)


class KeyNotFound(CryptoError):
    """No data key exists for this scope and version (never created, or destroyed)."""


class KeyMaterialError(CryptoError):
    """A KEK is missing or malformed. Names the kek id and its source, never the value."""


class FieldError(CryptoError):
    """A body or field designated for encryption cannot be parsed (the caller answers 400)."""
