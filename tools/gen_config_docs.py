"""Generate docs/configuration.md from the pydantic models in gateway/config.py.

    python tools/gen_config_docs.py          # rewrite docs/configuration.md
    python tools/gen_config_docs.py --check  # exit 1 if the committed file differs

Keys, types, defaults and limits come from the models; the sentence per key comes from
DESCRIPTIONS below. A key without a sentence (or a sentence for a key that no longer exists)
stops the generator, so a new config key cannot ship undocumented. tests/deploy/test_docs.py
runs the check.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gateway.config import Config
from gateway.config.units import format_duration, parse_duration, parse_size

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "configuration.md"

DESCRIPTIONS: dict[str, str] = {
    "listen": "Address of the public listener. `0.0.0.0:PORT` (or `[::]:PORT`) for all "
    "interfaces; a loopback address also makes `session.secure: auto` drop the Secure flag.",
    "workers": "Worker processes sharing the port with SO_REUSEPORT (`gateway run --workers N` "
    "overrides it). With more than one, metrics use prometheus-client's multiprocess mode.",
    "upstream": "The application behind the gateway.",
    "upstream.url": "Base URL of the application, `http://` or `https://`, without query or "
    "fragment. The canonical request path is appended to it.",
    "upstream.connect_timeout": "Time to open a connection to the upstream; beyond it the "
    "client gets 504 (a refused connection gets 502).",
    "upstream.timeout": "Longest wait for the upstream between reads; beyond it the client "
    "gets 504.",
    "upstream.preserve_host": "Send the client's `Host` header upstream instead of the "
    "upstream URL's host.",
    "max_body": "Largest request body accepted; bigger bodies get 413.",
    "trusted_proxies": "CIDRs whose `X-Forwarded-For`, `X-Forwarded-Proto` and "
    "`X-Forwarded-Host` are believed (your TLS terminator, see docs/tls.md). Empty: the socket "
    "peer is the client and such headers from clients are not believed.",
    "store": "Where users, sessions, lockout counters, wrapped data keys and the audit stream "
    "live.",
    "store.url": "`sqlite:///relative.db` (relative to the config file's folder), "
    "`sqlite:////absolute/path.db`, `redis://`, `rediss://`, "
    "`redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE`, `redis+cluster://HOST:PORT[,...]`. "
    "Details in docs/redis.md.",
    "keys": "Key-encryption keys (docs/keys.md).",
    "keys.active": "Id of the KEK that wraps new data keys; must be one of the ids under "
    "`keys.kek`.",
    "keys.kek": "KEKs by id, each `env:NAME` or `file:PATH` holding base64 of 32 bytes "
    "(`gateway keys generate`). Old ids stay listed until `gateway keys rewrap` has moved every "
    "wrapped key to the active one. A missing or malformed KEK (any listed id) stops "
    "`gateway run` with exit code 2.",
    "session": "The gateway's session cookie.",
    "session.cookie_name": "Cookie name; it gets the `__Host-` prefix when the cookie is Secure.",
    "session.secure": "`auto`: Secure unless `listen` is on localhost, 127.0.0.1 or ::1; "
    "`true` / `false` force it. Without Secure the cookie has no `__Host-` prefix.",
    "session.same_site": "SameSite attribute of the session and CSRF cookies.",
    "session.idle_timeout": "A session unused for this long ends.",
    "session.absolute_timeout": "A session ends this long after login, however active.",
    "cross_site": "Refusing state-changing requests that another site made the browser send "
    "(docs/policies.md, Cross-site requests).",
    "cross_site.check": "The default for rules without `cross_site_check`: refuse POST, PUT, "
    "PATCH, DELETE... whose Sec-Fetch-Site or Origin names another site (403 "
    "`cross_site_request`).",
    "cross_site.allowed_origins": "Origins (`https://host[:port]`) that may send them anyway.",
    "lockout": "Brute-force regulation (docs/lockout.md).",
    "lockout.max_failures": "Failed answers per account within `window` before the account is "
    "locked (password, TOTP and backup codes alike).",
    "lockout.window": "Period over which failures are counted.",
    "lockout.duration": "How long a lock lasts.",
    "lockout.ip_max_failures": "Sign-in attempts per client IP within `window`, all accounts "
    "together, before that IP gets 429.",
    "mfa": "TOTP second factor (docs/mfa.md).",
    "mfa.issuer": "Issuer shown by authenticator apps.",
    "mfa.digits": "Digits of a TOTP code.",
    "mfa.period": "Seconds per TOTP step.",
    "mfa.skew": "Steps accepted either side of the current one (pyotp `valid_window`).",
    "mfa.enforce": "`policy`: a password sign-in is enough until a rule with `access: mfa` "
    "asks for the second factor (step-up); `all`: every sign-in needs it, and users without "
    "one are sent to enrol.",
    "passwords": "Password rules and hashing.",
    "passwords.min_length": "Shortest password accepted when one is set or changed.",
    "passwords.argon2": "Argon2id parameters for new hashes; a hash made with other "
    "parameters is redone at the user's next successful login.",
    "passwords.argon2.time_cost": "Argon2id iterations.",
    "passwords.argon2.memory_cost": "Argon2id memory in KiB.",
    "passwords.argon2.parallelism": "Argon2id lanes.",
    "policies": "Glob patterns of policy files, relative to the config file's folder; files "
    "load in name order (docs/policies.md). Changes are reloaded on change or SIGHUP.",
    "policy_options": "How policy rules match.",
    "policy_options.case_insensitive_paths": "Match paths ignoring case (for apps on "
    "case-insensitive file systems).",
    "default_access": "Access for a request no rule matches.",
    "metrics": "Prometheus metrics (docs/operations.md).",
    "metrics.listen": "Address of the `/metrics` listener, never the public one; `null` turns "
    "it off.",
    "audit": "Audit trail (docs/operations.md).",
    "audit.log": "`stdout`: events are logged as `gateway.audit` lines; a file path "
    "(relative to the config file's folder) also appends each event as a JSON line. Events "
    "are kept in the store either way.",
    "plugins": "Plugins as `{use: NAME, with: {...}}`: `NAME` is an entry point of the group "
    "`gateway.plugins` or a module path such as `plugins.security_headers`; each plugin "
    "validates its own `with:` options when the config loads (docs/plugins.md).",
}

FORMATS = {parse_duration: "duration", parse_size: "size"}


def _kind(info: FieldInfo) -> str | None:
    for meta in info.metadata:
        func = getattr(meta, "func", None)
        if func in FORMATS:
            return FORMATS[func]
        if getattr(func, "__name__", "") == "_listen":
            return "HOST:PORT"
    return None


def _is_listen(meta: object) -> bool:
    return getattr(getattr(meta, "func", None), "__name__", "") == "_listen"


def _type(annotation: object, info: FieldInfo | None = None) -> str:
    kind = _kind(info) if info is not None else None
    if kind:
        return kind
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{_yaml(a)}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args)
    if origin is typing.Annotated:
        if any(_is_listen(m) for m in args[1:]):
            return "HOST:PORT"
        return _type(args[0])
    if origin is tuple:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "`null`"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return {str: "string", int: "integer", bool: "boolean", float: "number"}.get(
        annotation, str(annotation)
    )


def _yaml(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return str(value)


def _limits(info: FieldInfo) -> str:
    out = []
    for meta in info.metadata:
        for attr, sign in (("ge", "≥"), ("le", "≤"), ("gt", ">"), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                out.append(f"{sign} {getattr(meta, attr)}")
        if getattr(meta, "pattern", None):
            out.append(f"matches `{meta.pattern}`")
    return ", ".join(out)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below"
    kind = _kind(info)
    if kind == "duration":
        return f"`{format_duration(value)}`"
    if kind == "size":
        for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value % factor == 0:
                return f"`{value // factor}{unit}`"
        return f"`{value}B`"
    if isinstance(value, tuple | list):
        return "`[" + ", ".join(_yaml(v) for v in value) + "]`"
    if isinstance(value, dict):
        return "`{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}`"
    return f"`{_yaml(value)}`"


def _rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, FieldInfo, str]]:
    rows = []
    for name, info in model.model_fields.items():
        key = prefix + (info.alias or name)
        annotation = info.annotation
        rows.append((key, info, _type(annotation, info)))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(_rows(annotation, key + "."))
    return rows


def render() -> str:
    rows = _rows(Config)
    keys = [key for key, _, _ in rows]
    missing = [k for k in keys if k not in DESCRIPTIONS]
    stale = [k for k in DESCRIPTIONS if k not in keys]
    if missing or stale:
        raise SystemExit(f"DESCRIPTIONS out of date: missing {missing}, unknown {stale}")
    lines = [
        "# Configuration reference (gateway.yaml)",
        "",
        "<!-- Generated by `python tools/gen_config_docs.py` from gateway/config.py; do not",
        "     edit by hand. tests/deploy/test_docs.py fails when this file is out of date. -->",
        "",
        "`gateway run`, `gateway check` and every other verb read one YAML file: `-c FILE`, else",
        "`$GATEWAY_CONFIG`, else `./gateway.yaml`. Unknown keys are errors; `gateway check` lists",
        "every error at once, each naming its key path (values under `keys.` are never shown).",
        "Relative paths (store file, policies, audit file, `file:` KEKs) are resolved against",
        "the config file's folder. Durations are written `500ms 30s 15m 12h 7d`; sizes",
        "`512B 64KiB 10MiB 1GiB` (or `KB MB GB`).",
        "",
        "| key | type | default | limits | meaning |",
        "|---|---|---|---|---|",
    ]
    for key, info, kind in rows:
        lines.append(
            f"| `{key}` | {kind} | {_default(info)} | {_limits(info)} | {DESCRIPTIONS[key]} |"
        )
    lines += [
        "",
        "A `sqlite:` store path, the policy globs and an `audit.log` file are resolved against",
        "the folder of the config file, not the working directory. `keys.*` values are",
        "references (`env:NAME`, `file:PATH`), never key material; a raw key pasted there is",
        "refused without being echoed.",
        "",
        "The example `gateway.yaml` at the top of the repository lists the keys with their",
        "defaults and is a good starting point; `deploy/config/gateway.yaml` is the container's.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python tools/gen_config_docs.py", file=sys.stderr)
            return 1
        print(f"{TARGET} is up to date")
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
