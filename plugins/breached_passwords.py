"""breached_passwords: refuses new passwords that appear in a breach corpus.

The corpus is in the k-anonymity range format of the HIBP "Pwned Passwords" API: the SHA-1 of
a password in upper-case hex is split into a 5-character prefix and a 35-character suffix; the
file `<path>/<PREFIX>` (or `<PREFIX>.txt`) lists `SUFFIX:COUNT` lines. A directory with all
16^5 files is the offline copy; a partial directory is fine (a missing prefix file means no
entry). Optionally the online range API (`api_url`, off by default) is asked with only the
prefix, with a timeout; when it cannot answer the password is refused (`on_error: reject`,
the default, answers `password_check_failed`) or let through (`on_error: accept`).
File reads run in a worker thread. Never logs a password, its hash or its prefix.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from pathlib import Path
from typing import Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gateway.config import Duration
from gateway.hooks import PASSWORD_CHECK_FAILED

__all__ = ["Plugin", "range_lookup"]

log = logging.getLogger("gateway.plugins.breached_passwords")
BREACHED = "breached"


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path | None = None
    api_url: str | None = None
    timeout: Duration = 3.0
    on_error: Literal["reject", "accept"] = "reject"
    min_count: int = Field(1, ge=1)

    @field_validator("path")
    @classmethod
    def _folder(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is None:
            return None
        base = (info.context or {}).get("base_dir")
        if not v.is_absolute() and base is not None:
            v = Path(base) / v
        if not v.is_dir():
            raise ValueError(f"expected a folder of range files; {str(v)!r} is not one")
        return v

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError("expected an http(s) URL the 5-character prefix is appended to")
        return v

    @model_validator(mode="after")
    def _a_source(self) -> Options:
        if self.path is None and self.api_url is None:
            raise ValueError("expected `path` (offline range files) or `api_url` (or both)")
        return self


def range_lookup(text: str, suffix: str) -> int:
    """The count of `suffix` in a range answer (`SUFFIX:COUNT` lines), 0 if absent. Every
    line is compared in constant time; padding lines (count 0) count as absent."""
    found = 0
    want = suffix.encode()
    for line in text.splitlines():
        candidate, _, count = line.strip().partition(":")
        if hmac.compare_digest(candidate.upper().encode(), want):
            try:
                found = int(count)
            except ValueError:
                found = 1
    return found


MAX_RANGE = 1 << 20  # a real range answer is ~30 KiB, padded under 100 KiB


class RangeTooLarge(Exception):
    """The range API sent more than any real range answer holds."""


async def _bounded_text(resp: aiohttp.ClientResponse) -> str:
    body = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_RANGE:
            raise RangeTooLarge
    return body.decode("ascii", errors="replace")


def _read_range(folder: Path, prefix: str) -> str:
    for name in (prefix, prefix + ".txt"):
        try:
            return (folder / name).read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            continue
    return ""


class Plugin:
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options
        self._session: aiohttp.ClientSession | None = None

    async def on_shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def check_password(self, username: str, password: str) -> str | None:
        digest = hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()
        prefix, suffix = digest[:5], digest[5:]
        if self.options.path is not None:
            text = await asyncio.to_thread(_read_range, self.options.path, prefix)
            if range_lookup(text, suffix) >= self.options.min_count:
                return BREACHED
        if self.options.api_url is not None:
            return await self._online(prefix, suffix)
        return None

    async def _online(self, prefix: str, suffix: str) -> str | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.options.timeout)
            )
        try:
            async with self._session.get(
                self.options.api_url + prefix, headers={"Add-Padding": "true"}
            ) as resp:
                if resp.status != 200:
                    raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
                text = await _bounded_text(resp)
        except (TimeoutError, aiohttp.ClientError, RangeTooLarge) as exc:
            log.warning("range API unavailable", extra={"fields": {"error": type(exc).__name__}})
            return PASSWORD_CHECK_FAILED if self.options.on_error == "reject" else None
        return BREACHED if range_lookup(text, suffix) >= self.options.min_count else None
