"""Portcullis crypto recipes: keyring, key wrapping, streaming envelopes and field tokens.

Only this package touches AES-GCM, HKDF and nonces. It never imports aiohttp, never logs, and
never puts key material or plaintext into an exception message.

May import: `gateway.clock` and the store interface (data keys are kept in the store).
"""

from __future__ import annotations

from gateway.crypto.errors import (
    CryptoError,
    DecryptError,
    FieldError,
    KeyMaterialError,
    KeyNotFound,
)

__all__ = [
    "CryptoError",
    "DecryptError",
    "FieldError",
    "KeyMaterialError",
    "KeyNotFound",
]
