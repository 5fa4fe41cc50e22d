"""Hot reload: holds the current PolicySet and swaps in a new one only when it is valid whole.

Owns `PolicyHolder`: `.current` is read once per request (the request keeps that object until
it finishes), `reload()` loads and validates the whole set and replaces `.current` with one
attribute assignment, or keeps the old set and reports the errors. `watch()` polls the policy
files (their mtimes, sizes and the set of files the globs match) and reloads on change. SIGHUP
wiring, metrics and audit belong to the server: they call `reload()` and pass `on_reload`, which
gets every `ReloadResult` (rule and file counts, or the problems). Each worker
process holds its own PolicyHolder and watcher. Never half-applies a set, never raises out of
`reload()` or `watch()` because of a bad policy file.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.policy.errors import PolicyError, PolicyProblem
from gateway.policy.loader import load_policies, policy_files
from gateway.policy.model import PolicySet

__all__ = ["PolicyHolder", "ReloadResult"]

log = logging.getLogger("gateway.policy")

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    errors: tuple[PolicyProblem, ...] = field(default=())
    rules: int = 0  # of the set now serving, when ok
    files: int = 0

    @property
    def result(self) -> Literal["ok", "error"]:
        return "ok" if self.ok else "error"


class PolicyHolder:
    """The live policy of one process. Construct at start-up: an invalid set raises PolicyError."""

    def __init__(
        self,
        patterns: list[str],
        *,
        base_dir: Path,
        default_access: str,
        case_insensitive_paths: bool,
        on_reload: Callable[[ReloadResult], None] | None = None,
    ) -> None:
        self._patterns = list(patterns)
        self._base_dir = Path(base_dir)
        self._default_access = default_access
        self._case_insensitive = case_insensitive_paths
        self._on_reload = on_reload
        self._lock = threading.Lock()
        self._seen = self.fingerprint()
        self.current: PolicySet = self._load()

    def _load(self) -> PolicySet:
        return load_policies(
            self._patterns,
            base_dir=self._base_dir,
            default_access=self._default_access,
            case_insensitive_paths=self._case_insensitive,
        )

    def fingerprint(self) -> Fingerprint:
        """What the files look like now: (path, mtime_ns, size) for each matched file."""
        files, _ = policy_files(self._patterns, self._base_dir)
        out = []
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def changed(self) -> bool:
        return self.fingerprint() != self._seen

    def reload(self) -> ReloadResult:
        """Load the whole set again; swap it in if valid, else keep the current one."""
        with self._lock:
            # Fingerprint first: an edit racing with the load is seen as a change next poll.
            self._seen = self.fingerprint()
            try:
                new = self._load()
            except PolicyError as exc:
                log.error("policy reload failed, keeping the current policy:\n%s", exc)
                result = ReloadResult(False, tuple(exc.problems))
            else:
                self.current = new  # one assignment: readers see the old or the new set
                log.info(
                    "policy reloaded: %d rules from %d files", len(new.rules), len(new.sources)
                )
                result = ReloadResult(True, rules=len(new.rules), files=len(new.sources))
        self._notify(result)
        return result

    def _notify(self, result: ReloadResult) -> None:
        if self._on_reload is None:
            return
        try:
            self._on_reload(result)
        except Exception:  # a metrics or audit hook must never break reloading
            log.exception("policy on_reload hook failed")

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the policy files every `interval` seconds and reload on change (runs forever).

        A change is applied once the files look the same on two polls in a row, so a file that
        an editor is still writing is not loaded half-written.
        """
        pending: Fingerprint | None = None
        while True:
            await asyncio.sleep(interval)
            try:
                now = await asyncio.to_thread(self.fingerprint)
                if now == self._seen:
                    pending = None
                elif now != pending:
                    pending = now  # changed: wait one more interval for it to settle
                else:
                    pending = None
                    await asyncio.to_thread(self.reload)
            except Exception:  # keep watching whatever happens to one poll
                log.exception("policy watch poll failed")
