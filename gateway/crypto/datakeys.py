"""Data keys per scope (`user:<id>`, `role:<name>`): versioned, wrapped under the KEK, cached.

Each version is one store row, kind `datakey`, key `<scope>#<version:010d>`, value a wrapped
key record (`wrap.py`). The highest version is active (it encrypts); every version decrypts.
Creation on first use and rotation go through `put_if_absent`, so racing instances agree on one
key per version; `rewrap_all` swaps rows with `compare_and_set`, so it is resumable,
idempotent and safe while serving. `destroy` deletes every version: the scope's ciphertext
becomes unreadable (crypto-shredding).

Unwrapped keys are cached in memory, bounded in size and age (time from the injected clock);
rotate and destroy invalidate this instance's cache at once, other instances within the TTL.
Never logs; errors carry scope names and kek ids, never key bytes. Key creation and rotation
are reported to the injected `on_event` recorder (the audit trail, wired by the caller, so this
module never imports the web or account layers); it is awaited only when a key row was actually
written, never on the cached hot path.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.clock import Clock
from gateway.crypto.errors import DecryptError, KeyMaterialError, KeyNotFound
from gateway.crypto.keyring import Keyring
from gateway.crypto.wrap import DATA_KEY_SIZE, WrappedKey, rewrap, unwrap_key, wrap_key
from gateway.store.base import Store

__all__ = ["DataKeys", "KeyEvents", "KeyStatus", "RewrapReport", "check_scope"]

KIND = "datakey"
_SCOPE = re.compile(r"(?:user|role):[^\s#\x00-\x1f\x7f]{1,200}")
_RACE_ATTEMPTS = 8
# (event, scope, version): "key.created" or "key.rotated", after the row was written.
KeyEvents = Callable[[str, str, int], Awaitable[None]]


def check_scope(scope: str) -> str:
    if not _SCOPE.fullmatch(scope):
        raise ValueError("scope must be user:<id> or role:<name> (no '#', no whitespace)")
    return scope


async def shred(store: Store, scope: str) -> int:
    """Delete every stored version of a scope's key, without needing the KEKs (user deletion
    from the CLI). Other instances' caches forget the key within their cache TTL."""
    check_scope(scope)
    removed = 0
    for key, _ in await store.scan(KIND, scope + "#"):
        parsed = _parse_row_key(key)
        if parsed is not None and parsed[0] == scope:
            removed += await store.delete(KIND, key)
    return removed


def _row_key(scope: str, version: int) -> str:
    return f"{scope}#{version:010d}"


def _parse_row_key(key: str) -> tuple[str, int] | None:
    scope, sep, version = key.rpartition("#")
    if not sep or not version.isdigit() or not _SCOPE.fullmatch(scope):
        return None
    return scope, int(version)


@dataclass(frozen=True, slots=True)
class KeyStatus:
    active_kek: str
    scopes: int
    versions: int
    rows_by_kek: dict[str, int]
    needs_rewrap: int
    unknown_kek: int


@dataclass(slots=True)
class RewrapReport:
    rewrapped: int = 0
    current: int = 0
    failed: list[str] = field(default_factory=list)


class DataKeys:
    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        clock: Clock,
        *,
        cache_size: int = 1024,
        cache_ttl: float = 60.0,
        on_event: KeyEvents | None = None,
    ) -> None:
        self._store = store
        self._on_event = on_event
        self._keyring = keyring
        self._clock = clock
        self._size = cache_size
        self._ttl = cache_ttl
        self._keys: OrderedDict[tuple[str, int], tuple[bytes, float]] = OrderedDict()
        self._active: OrderedDict[str, tuple[int, float]] = OrderedDict()

    # -- cache --------------------------------------------------------------------------------
    def _cache_get(self, scope: str, version: int) -> bytes | None:
        hit = self._keys.get((scope, version))
        if hit is None:
            return None
        if hit[1] <= self._clock.now():
            del self._keys[(scope, version)]
            return None
        self._keys.move_to_end((scope, version))
        return hit[0]

    def _cache_put(self, scope: str, version: int, key: bytes) -> None:
        self._keys[(scope, version)] = (key, self._clock.now() + self._ttl)
        self._keys.move_to_end((scope, version))
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)

    def _set_active(self, scope: str, version: int) -> None:
        self._active[scope] = (version, self._clock.now() + self._ttl)
        self._active.move_to_end(scope)
        while len(self._active) > self._size:
            self._active.popitem(last=False)

    def invalidate(self, scope: str | None = None) -> None:
        """Forget cached keys of one scope (or all)."""
        if scope is None:
            self._keys.clear()
            self._active.clear()
            return
        self._active.pop(scope, None)
        for cached in [k for k in self._keys if k[0] == scope]:
            del self._keys[cached]

    @property
    def cached(self) -> int:
        return len(self._keys)

    # -- store rows ---------------------------------------------------------------------------
    async def _rows(self, scope: str) -> dict[int, bytes]:
        rows = await self._store.scan(KIND, scope + "#")
        found: dict[int, bytes] = {}
        for key, value in rows:
            parsed = _parse_row_key(key)
            if parsed is not None and parsed[0] == scope:
                found[parsed[1]] = value
        return found

    def _unwrap(self, record: bytes, scope: str, version: int) -> bytes:
        key = unwrap_key(record, self._keyring, scope, version)
        self._cache_put(scope, version, key)
        return key

    async def _create(self, scope: str, version: int) -> bool:
        key = secrets.token_bytes(DATA_KEY_SIZE)
        record = wrap_key(key, self._keyring, scope, version)
        if await self._store.put_if_absent(KIND, _row_key(scope, version), record):
            self._cache_put(scope, version, key)
            return True
        return False

    async def _report(self, event: str, scope: str, version: int) -> None:
        if self._on_event is not None:
            await self._on_event(event, scope, version)

    # -- the API ------------------------------------------------------------------------------
    async def active(self, scope: str) -> tuple[int, bytes]:
        """(version, key) that encrypts for `scope`; the first call creates version 1."""
        check_scope(scope)
        hit = self._active.get(scope)
        if hit is not None and hit[1] > self._clock.now():
            key = self._cache_get(scope, hit[0])
            if key is not None:
                return hit[0], key
        for _ in range(_RACE_ATTEMPTS):
            rows = await self._rows(scope)
            if not rows:
                # Two instances may race here; put_if_absent lets exactly one key win,
                # and only the winner reports the new key.
                if await self._create(scope, 1):
                    await self._report("key.created", scope, 1)
                continue
            version = max(rows)
            key = self._cache_get(scope, version) or self._unwrap(rows[version], scope, version)
            self._set_active(scope, version)
            return version, key
        raise KeyNotFound(f"data key of {scope} vanished while being created")

    async def get(self, scope: str, version: int) -> bytes:
        """The key of (scope, version) for decryption; KeyNotFound if absent or destroyed."""
        check_scope(scope)
        key = self._cache_get(scope, version)
        if key is not None:
            return key
        if not 0 < version <= 0xFFFFFFFF:
            raise KeyNotFound(f"no data key {scope} version {version}")
        record = await self._store.get(KIND, _row_key(scope, version))
        if record is None:
            raise KeyNotFound(f"no data key {scope} version {version}")
        return self._unwrap(record, scope, version)

    async def all_keys(self, scope: str) -> dict[int, bytes]:
        """Every version's key (for response decryption); empty if the scope has none."""
        check_scope(scope)
        keys = {
            version: self._cache_get(scope, version) or self._unwrap(record, scope, version)
            for version, record in (await self._rows(scope)).items()
        }
        if keys:
            self._set_active(scope, max(keys))  # the scan saw which version is active
        return keys

    def cached_keys(self, scope: str, depth: int = 8) -> dict[int, bytes]:
        """The keys of `scope` this instance holds in its cache, fresh, by version: the active
        one and up to `depth - 1` below it. No I/O; empty when the active version is not
        cached (the caller then reads the store). A version missing here may still exist."""
        hit = self._active.get(scope)
        if hit is None or hit[1] <= self._clock.now():
            return {}
        keys = {}
        for version in range(hit[0], max(0, hit[0] - depth), -1):
            key = self._cache_get(scope, version)
            if key is not None:
                keys[version] = key
        return keys

    async def rotate(self, scope: str) -> int:
        """Create the next version, which becomes active; returns it."""
        check_scope(scope)
        for _ in range(_RACE_ATTEMPTS):
            rows = await self._rows(scope)
            version = max(rows, default=0) + 1
            if await self._create(scope, version):
                self.invalidate(scope)
                self._set_active(scope, version)
                await self._report("key.rotated", scope, version)
                return version
        raise KeyMaterialError(f"could not rotate {scope}: concurrent rotations kept winning")

    async def destroy(self, scope: str) -> int:
        """Delete every version of the scope's key (crypto-shredding); returns rows removed."""
        self.invalidate(scope)
        removed = await shred(self._store, scope)
        self.invalidate(scope)
        return removed

    async def status(self) -> KeyStatus:
        rows = await self._store.scan(KIND)
        by_kek: Counter[str] = Counter()
        scopes: set[str] = set()
        unknown = 0
        for key, value in rows:
            parsed = _parse_row_key(key)
            if parsed is None:
                continue
            scopes.add(parsed[0])
            try:
                kek_id = WrappedKey.from_bytes(value).kek_id
            except DecryptError:
                kek_id = "?"
            by_kek[kek_id] += 1
            if kek_id not in self._keyring:
                unknown += 1
        active = self._keyring.active_id
        return KeyStatus(
            active_kek=active,
            scopes=len(scopes),
            versions=sum(by_kek.values()),
            rows_by_kek=dict(sorted(by_kek.items())),
            needs_rewrap=sum(n for kek, n in by_kek.items() if kek != active),
            unknown_kek=unknown,
        )

    async def rewrap_all(self) -> RewrapReport:
        """Rewrap every row under the active KEK. Rows that cannot be unwrapped (their KEK is
        gone, or corrupt) are listed by store key and left as they are."""
        report = RewrapReport()
        for key, value in await self._store.scan(KIND):
            parsed = _parse_row_key(key)
            if parsed is None:
                continue
            scope, version = parsed
            for _ in range(_RACE_ATTEMPTS):
                try:
                    if WrappedKey.from_bytes(value).kek_id == self._keyring.active_id:
                        report.current += 1
                        break
                    fresh = rewrap(value, self._keyring, scope, version)
                except (DecryptError, KeyMaterialError):
                    report.failed.append(key)
                    break
                if await self._store.compare_and_set(KIND, key, value, fresh):
                    report.rewrapped += 1
                    break
                # Someone else changed the row (another rewrap, a destroy): look again.
                current = await self._store.get(KIND, key)
                if current is None:
                    break
                value = current
            else:
                report.failed.append(key)
        return report
