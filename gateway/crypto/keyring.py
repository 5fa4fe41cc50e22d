"""The keyring of key-encryption keys (KEKs) and where their bytes come from.

A KEK is 32 raw bytes, configured as `env:NAME` or `file:PATH` holding base64 of exactly 32
bytes. Errors name the kek id and the variable or file, never the value, so they can be printed
by `gateway check` and at start-up (exit 2). This module never logs.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from gateway.crypto.errors import KeyMaterialError

__all__ = ["KEK_SIZE", "Keyring", "dev_keyfile", "generate_kek", "parse_kek"]

KEK_SIZE = 32


def generate_kek() -> str:
    """A fresh random KEK as standard base64 (what `gateway keys generate` prints)."""
    return base64.b64encode(secrets.token_bytes(KEK_SIZE)).decode("ascii")


# What every message about missing or malformed KEK material ends with: what to do next.
NEXT_STEP = (
    "make one with `gateway keys generate` and give it as GATEWAY_KEK (or keys.kek.<id>: "
    "file:PATH); for a local trial only, `gateway run --dev` keeps one in var/dev-kek"
)


def parse_kek(text: str, *, kek_id: str, source: str) -> bytes:
    """Decode base64 of exactly 32 bytes; `source` names where it came from in errors."""
    compact = "".join(text.split())
    try:
        raw = base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise KeyMaterialError(
            f"kek {kek_id!r} from {source} is not valid base64; {NEXT_STEP}"
        ) from None
    if len(raw) != KEK_SIZE:
        raise KeyMaterialError(
            f"kek {kek_id!r} from {source} must decode to {KEK_SIZE} bytes, got {len(raw)};"
            f" {NEXT_STEP}"
        )
    return raw


def _resolve(kek_id: str, ref: str, environ: Mapping[str, str], base_dir: Path) -> bytes:
    kind, sep, target = ref.partition(":")
    if not sep or not target or kind not in ("env", "file"):
        raise KeyMaterialError(
            # SECURITY: a raw key pasted in place of a reference must not be echoed back.
            f"kek {kek_id!r}: reference must be env:NAME or file:PATH"
        )
    if kind == "env":
        source = f"environment variable {target}"
        value = environ.get(target)
        if value is None or not value.strip():
            raise KeyMaterialError(f"kek {kek_id!r}: {source} is not set; {NEXT_STEP}")
        return parse_kek(value, kek_id=kek_id, source=source)
    path = Path(target)
    if not path.is_absolute():
        path = base_dir / path
    source = f"file {path}"
    try:
        value = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyMaterialError(f"kek {kek_id!r}: {source} does not exist; {NEXT_STEP}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise KeyMaterialError(f"kek {kek_id!r}: {source} cannot be read ({reason})") from None
    return parse_kek(value, kek_id=kek_id, source=source)


class Keyring:
    """KEKs by id, one of them active (the one new wraps use). Immutable after construction."""

    __slots__ = ("_active", "_keys")

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        if not keys:
            raise KeyMaterialError("the keyring holds no kek")
        for kek_id, key in keys.items():
            if not kek_id or len(kek_id.encode("utf-8")) > 255:
                raise KeyMaterialError("a kek id must be 1 to 255 bytes of UTF-8")
            if len(key) != KEK_SIZE:
                raise KeyMaterialError(f"kek {kek_id!r} must be {KEK_SIZE} bytes")
        if active not in keys:
            raise KeyMaterialError(f"active kek {active!r} is not in the keyring")
        ids = sorted(keys)
        for i, first in enumerate(ids):
            for second in ids[i + 1 :]:
                if hmac.compare_digest(keys[first], keys[second]):
                    raise KeyMaterialError(
                        f"keks {first!r} and {second!r} hold the same key (duplicate)"
                    )
        self._keys: dict[str, bytes] = {k: bytes(v) for k, v in keys.items()}
        self._active = active

    @classmethod
    def from_refs(
        cls,
        active: str,
        refs: Mapping[str, str],
        *,
        environ: Mapping[str, str] | None = None,
        base_dir: str | os.PathLike[str] = ".",
    ) -> Keyring:
        """Resolve `{kek_id: "env:NAME" | "file:PATH"}`; relative paths start at `base_dir`."""
        env = os.environ if environ is None else environ
        base = Path(base_dir)
        keys = {kek_id: _resolve(kek_id, ref, env, base) for kek_id, ref in refs.items()}
        return cls(keys, active)

    @property
    def active_id(self) -> str:
        return self._active

    @property
    def active_key(self) -> bytes:
        return self._keys[self._active]

    def get(self, kek_id: str) -> bytes | None:
        return self._keys.get(kek_id)

    def __contains__(self, kek_id: object) -> bool:
        return kek_id in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        # SECURITY: never the key bytes.
        return f"Keyring(active={self._active!r}, ids={sorted(self._keys)!r})"


def dev_keyfile(path: str | os.PathLike[str]) -> str:
    """Create (mode 0600) or reuse a local KEK file for `run --dev`; returns its `file:` ref.

    An existing file must be private to its owner and hold a valid KEK. The caller prints the
    loud warning: this key lives next to the data it protects.
    """
    target = Path(path).resolve()
    ref = f"file:{target}"
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = target.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyMaterialError(
                f"dev kek file {target} is readable by others (mode {stat.S_IMODE(mode):o})"
            ) from None
        _resolve("dev", ref, {}, target.parent)
        return ref
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(generate_kek() + "\n")
    return ref
