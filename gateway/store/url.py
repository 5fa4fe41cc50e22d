"""Store URLs: turn the `store.url` string of gateway.yaml into a typed target.

Owns the accepted schemes and their shapes. A bad URL raises ValueError that says what was
expected and shows the URL with any password replaced by `***`; this module must never put a
password into an error, a log or a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "ClusterTarget",
    "RedisTarget",
    "SentinelTarget",
    "SQLiteTarget",
    "StoreTarget",
    "parse_store_url",
    "redact_url",
]

EXPECTED = (
    "sqlite:///relative.db, sqlite:////absolute/path.db, redis://[user:pass@]host:port[/db], "
    "rediss://..., redis+sentinel://host:26379[,host2:port]/SERVICE[?db=0], "
    "redis+cluster://host:port[,host2:port]"
)


@dataclass(frozen=True)
class SQLiteTarget:
    path: Path


@dataclass(frozen=True)
class RedisTarget:
    url: str = field(repr=False)  # handed to redis-py as is; may hold a password


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ClusterTarget:
    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)


StoreTarget = SQLiteTarget | RedisTarget | SentinelTarget | ClusterTarget


def redact_url(url: str) -> str:
    """The URL with the password of its userinfo and every query value but `db` as `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<not a URL>" if "@" in url else url
    netloc_end = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if i != -1:
            netloc_end = min(netloc_end, i)
    netloc, tail = rest[:netloc_end], rest[netloc_end:]
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
        netloc = f"{user}:***@{hosts}"
    path, q, query = tail.partition("?")
    if q:
        # redis-py also reads ?password=...; only a database number is safe to show.
        shown = [
            p if p.startswith("db=") or "=" not in p else p.split("=", 1)[0] + "=***"
            for p in query.split("&")
        ]
        tail = path + "?" + "&".join(shown)
    return f"{scheme}://{netloc}{tail}"


def _bad(url: str, why: str) -> ValueError:
    return ValueError(f"store.url {redact_url(url)!r}: {why}; expected one of {EXPECTED}")


def parse_store_url(url: str, *, base_dir: Path) -> StoreTarget:
    if not isinstance(url, str) or "://" not in url:
        raise _bad(str(url) if isinstance(url, str) else "", "not a URL")
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        return _sqlite(url, base_dir)
    if scheme in ("redis", "rediss"):
        return _redis(url)
    if scheme == "redis+sentinel":
        return _sentinel(url)
    if scheme == "redis+cluster":
        return _cluster(url)
    raise _bad(url, f"unknown scheme {scheme!r}")


def _sqlite(url: str, base_dir: Path) -> SQLiteTarget:
    rest = url.partition("://")[2]
    if not rest.startswith("/") or "?" in rest or "#" in rest:
        raise _bad(url, "sqlite URLs have an empty host and a path")
    path = unquote(rest[1:])
    if not path or path.endswith("/"):
        raise _bad(url, "sqlite URL names no file")
    p = Path(path)
    return SQLiteTarget(p if p.is_absolute() else Path(base_dir) / p)


def _redis(url: str) -> RedisTarget:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _bad(url, "invalid host or port") from None
    if not parts.hostname and not port:
        raise _bad(url, "redis URL names no host")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise _bad(url, "the path of a redis URL is a database number")
    return RedisTarget(url)


def _split_netloc(url: str) -> tuple[str | None, str | None, tuple[tuple[str, int], ...], str]:
    """(username, password, hosts, path-and-query) of a multi-host URL."""
    rest = url.partition("://")[2]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i != -1), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, has_pw, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if has_pw else None
    hosts: list[tuple[str, int]] = []
    for item in netloc.split(","):
        host, port = _host_port(url, item)
        hosts.append((host, port))
    return username, password, tuple(hosts), tail


def _host_port(url: str, item: str) -> tuple[str, int]:
    if item.startswith("["):
        host, _, after = item[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
    else:
        host, _, port_text = item.partition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _bad(url, "every node must be host:port")
    return host, int(port_text)


def _sentinel(url: str) -> SentinelTarget:
    username, password, hosts, tail = _split_netloc(url)
    path, _, query = tail.partition("?")
    service = unquote(path.strip("/"))
    if not service or "/" in service:
        raise _bad(url, "a sentinel URL names the monitored service as its path")
    params = parse_qs(query, keep_blank_values=True)
    unknown = set(params) - {"db"}
    if unknown:
        raise _bad(url, f"unknown query parameter(s) {sorted(unknown)}; only db is accepted")
    db_text = params.get("db", ["0"])[-1]
    if not db_text.isdigit():
        raise _bad(url, "db must be a database number")
    return SentinelTarget(hosts, service, int(db_text), username, password)


def _cluster(url: str) -> ClusterTarget:
    username, password, hosts, tail = _split_netloc(url)
    if tail.strip("/"):
        raise _bad(url, "a cluster URL has no path or query (cluster mode has only db 0)")
    return ClusterTarget(hosts, username, password)
