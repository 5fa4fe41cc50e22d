"""Field tokens: `gwe1.` + base64url (no padding) of one AES-256-GCM sealed value.

Payload: format (1, = 0x01) | key version (4, BE) | key id (4) | nonce (12) | ciphertext+tag.
HKDF-SHA256(data key, info = label | scope | version) gives the AES key and the 4-byte key id, so
a token sealed for one scope or version never opens under another (the same binding is also in
the associated data), and a reader can tell a token that is not theirs (key id differs: foreign)
from one that was tampered with (key id matches, tag fails: invalid).
The token alphabet is `[A-Za-z0-9_-]` after the dot: it is self-delimiting in HTML, JSON, form
values and URLs and needs no escaping there.

Random 96-bit nonces under one derived key stay safe up to about 2**32 tokens per scope and key
version; `keys rotate SCOPE` starts a fresh key. Every failure to open is one DecryptError.
Never logs.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import struct
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.crypto.errors import DecryptError

__all__ = [
    "KeyNeeded",
    "MAX_FIELD_PLAINTEXT",
    "MAX_TOKEN_LEN",
    "MIN_TOKEN_LEN",
    "TOKEN_FORMAT",
    "TOKEN_PREFIX",
    "TOKEN_RE",
    "TOKEN_RE_BYTES",
    "TokenOpener",
    "make_opener",
    "open_field",
    "seal_field",
    "token_key_version",
]

TOKEN_PREFIX = "gwe1."  # noqa: S105 (a format marker, not a secret)
TOKEN_FORMAT = 1
MAX_FIELD_PLAINTEXT = 64 * 1024
_NONCE_SIZE = 12
_TAG_SIZE = 16
_KID_SIZE = 4
_HEAD = struct.Struct(f">BI{_KID_SIZE}s")
_OVERHEAD = _HEAD.size + _NONCE_SIZE + _TAG_SIZE
_LABEL = b"portcullis/token/v1\x00"


_PREFIX = TOKEN_PREFIX.encode("ascii")
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")
_B64_VALUE = bytes(_ALPHABET.find(bytes([c])) & 0xFF for c in range(256))
_UNUSED_BITS = {0: 0, 2: 0x0F, 3: 0x03}  # by len % 4: bits of the last character left over
_PAD = {0: b"", 2: b"==", 3: b"="}


def _b64_len(n: int) -> int:
    return (n * 4 + 2) // 3


MIN_TOKEN_LEN = len(TOKEN_PREFIX) + _b64_len(_OVERHEAD)
MAX_TOKEN_LEN = len(TOKEN_PREFIX) + _b64_len(_OVERHEAD + MAX_FIELD_PLAINTEXT)

_BODY = f"[A-Za-z0-9_-]{{{MIN_TOKEN_LEN - 5},{MAX_TOKEN_LEN - 5}}}+(?![A-Za-z0-9_-])"
TOKEN_RE = re.compile(r"gwe1\." + _BODY)
TOKEN_RE_BYTES = re.compile(rb"gwe1\." + _BODY.encode("ascii"))


def _binding(scope: str, version: int) -> bytes:
    raw = scope.encode("utf-8")
    return _LABEL + struct.pack(">BH", TOKEN_FORMAT, len(raw)) + raw + struct.pack(">I", version)


def _derive(data_key: bytes, binding: bytes) -> tuple[AESGCM, bytes]:
    if len(data_key) != 32:
        raise ValueError("a data key is 32 bytes")
    okm = HKDF(algorithm=hashes.SHA256(), length=32 + _KID_SIZE, salt=None, info=binding).derive(
        data_key
    )
    return AESGCM(okm[:32]), okm[32:]


def seal_field(
    data_key: bytes, scope: str, version: int, plaintext: bytes, *, _nonce: bytes | None = None
) -> str:
    """A token for `plaintext` under the data key of (scope, version)."""
    if len(plaintext) > MAX_FIELD_PLAINTEXT:
        raise ValueError("field value too large for a token")
    if not 0 <= version <= 0xFFFFFFFF:
        raise ValueError("key version must fit in 32 bits")
    nonce = os.urandom(_NONCE_SIZE) if _nonce is None else _nonce
    if len(nonce) != _NONCE_SIZE:
        raise ValueError("nonce must be 12 bytes")
    binding = _binding(scope, version)
    aead, kid = _derive(data_key, binding)
    head = _HEAD.pack(TOKEN_FORMAT, version, kid)
    ct = aead.encrypt(nonce, plaintext, binding + head)
    payload = base64.urlsafe_b64encode(head + nonce + ct).rstrip(b"=")
    return TOKEN_PREFIX + payload.decode("ascii")


def _decode(token: str | bytes) -> bytes:
    raw = token.encode("ascii", errors="replace") if isinstance(token, str) else bytes(token)
    # What TOKEN_RE_BYTES.fullmatch checks, without the regex engine: the length bounds, the
    # prefix and nothing but the token alphabet after it.
    if (
        not MIN_TOKEN_LEN <= len(raw) <= MAX_TOKEN_LEN
        or not raw.startswith(_PREFIX)
        or raw[len(_PREFIX) :].translate(None, _ALPHABET)
    ):
        raise DecryptError()
    body = raw[len(_PREFIX) :]
    extra = len(body) % 4
    # Canonical encoding only: the unused low bits of the last character must be zero (no two
    # spellings of one token).
    if extra == 1 or _B64_VALUE[body[-1]] & _UNUSED_BITS[extra]:
        raise DecryptError()
    try:
        payload = binascii.a2b_base64(body.translate(_URLSAFE_TO_STD) + _PAD[extra])
    except (binascii.Error, ValueError):
        raise DecryptError() from None
    if len(payload) < _OVERHEAD or payload[0] != TOKEN_FORMAT:
        raise DecryptError()
    return payload


def token_key_version(token: str | bytes) -> int:
    """The data-key version a token names (unauthenticated until it opens)."""
    version: int = _HEAD.unpack_from(_decode(token))[1]
    return version


class _TokenKey:
    """The derived AEAD and key id of one (data key, scope, version)."""

    __slots__ = ("aad", "aead", "binding", "kid", "version", "_version_bytes")

    def __init__(self, data_key: bytes, scope: str, version: int) -> None:
        self.version = version
        self.binding = _binding(scope, version)
        self.aead, self.kid = _derive(data_key, self.binding)
        self._version_bytes = struct.pack(">I", version)
        # The associated data of every token this key opens: binding || format, version, kid.
        self.aad = self.binding + _HEAD.pack(TOKEN_FORMAT, version, self.kid)

    def open(self, payload: bytes) -> bytes | None:
        """Plaintext; None if the token is for another key; DecryptError if tampered."""
        # payload[0] (the format) was checked by _decode; then version (4) and key id (4).
        if payload[1:5] != self._version_bytes or not hmac.compare_digest(self.kid, payload[5:9]):
            return None
        view = memoryview(payload)
        try:
            return self.aead.decrypt(
                view[_HEAD.size : _HEAD.size + _NONCE_SIZE],
                view[_HEAD.size + _NONCE_SIZE :],
                self.aad,
            )
        except InvalidTag:
            raise DecryptError() from None


def open_field(data_key: bytes, scope: str, version: int, token: str | bytes) -> bytes:
    """The plaintext of `token`, sealed for exactly this scope and key version."""
    if len(data_key) != 32:
        raise DecryptError()
    plaintext = _TokenKey(data_key, scope, version).open(_decode(token))
    if plaintext is None:
        raise DecryptError()
    return plaintext


class KeyNeeded(Exception):  # noqa: N818 - a request for a key, not a failure
    """A TokenOpener holds no key (and no answer) for this version yet: load it and retry."""

    def __init__(self, version: int) -> None:
        super().__init__("token key version not loaded")
        self.version = version


class TokenOpener:
    """An `open_token` for TokenReplacer over one scope whose data keys are loaded on demand,
    one version at a time, by the caller (who can await the store): a token of a version not
    loaded raises KeyNeeded(version) before anything is counted; `load(version, key)` answers
    it (None: the scope has no such key, its tokens are foreign). Kept for one response only,
    so keys never pass between users or requests here."""

    __slots__ = ("_keys", "_scope", "opened_bytes")

    def __init__(self, scope: str) -> None:
        self._scope = scope
        self._keys: dict[int, _TokenKey | None] = {}
        self.opened_bytes = 0  # plaintext bytes of the tokens opened (for the byte counter)

    @property
    def loaded(self) -> int:
        """How many versions were answered (with a key or with None)."""
        return len(self._keys)

    def load(self, version: int, data_key: bytes | None) -> None:
        if data_key is None or len(data_key) != 32:
            self._keys[version] = None
        else:
            self._keys[version] = _TokenKey(data_key, self._scope, version)

    def __call__(self, token: str | bytes) -> bytes | None:
        payload = _decode(token)
        version: int = _HEAD.unpack_from(payload)[1]
        try:
            token_key = self._keys[version]
        except KeyError:
            raise KeyNeeded(version) from None
        if token_key is None:
            return None
        plaintext = token_key.open(payload)
        if plaintext is not None:
            self.opened_bytes += len(plaintext)
        return plaintext


def make_opener(scope: str, keys: Mapping[int, bytes]) -> Callable[[str | bytes], bytes | None]:
    """An `open_token` for TokenReplacer over one scope's data keys by version: plaintext,
    None for a token sealed under another key (foreign), DecryptError when tampered.
    Derived keys are kept for the opener's life (one response), not beyond."""
    derived: dict[int, _TokenKey] = {}

    def open_token(token: str | bytes) -> bytes | None:
        payload = _decode(token)
        version: int = _HEAD.unpack_from(payload)[1]
        token_key = derived.get(version)
        if token_key is None:
            data_key = keys.get(version)
            if data_key is None or len(data_key) != 32:
                return None
            token_key = derived[version] = _TokenKey(data_key, scope, version)
        return token_key.open(payload)

    return open_token
