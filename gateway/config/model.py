"""gateway.yaml: parsed once, at start-up, into frozen typed models.

Owns the schema of the contract's config keys (DESIGN.md section 3) and the error report of
`gateway check`. Every error names the key path, the offending value and what was expected; all
errors are reported at once. Never prints a secret: values under any key whose name looks
secret (`keys.`, `kek`, `token`, `password`...) are shown as `<redacted>`, the credentials of
every URL are masked, and a mapping shows its key names only. Nothing else in the gateway reads
YAML or the environment at request time.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from gateway.config.plugins import problems_of
from gateway.config.shown import mask_urls, shown_value
from gateway.config.units import parse_duration, parse_size

__all__ = [
    "Config",
    "ConfigError",
    "ConfigProblem",
    "Duration",
    "load_config",
    "mask_urls",
    "parse_config",
    "shown_value",
    "with_listeners",
]

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
_SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")
_STORE_SCHEMES = ("sqlite", "redis", "rediss", "redis+sentinel", "redis+cluster")


def _listen(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8080")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8080")
    return value


Listen = Annotated[str, BeforeValidator(_listen)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Upstream(_Model):
    url: str
    connect_timeout: Duration = 5.0
    timeout: Duration = 60.0
    preserve_host: bool = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("expected a URL without query or fragment")
        return v.rstrip("/")


class StoreSettings(_Model):
    url: str = "sqlite:///var/gateway.db"

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        scheme = v.partition("://")[0]
        if scheme not in _STORE_SCHEMES or "://" not in v:
            raise ValueError(
                "expected sqlite:///PATH, redis://, rediss://, "
                "redis+sentinel://HOST:PORT/SERVICE or redis+cluster://HOST:PORT"
            )
        return v


class Keys(_Model):
    active: str = "default"
    kek: dict[str, str] = Field(default_factory=lambda: {"default": "env:GATEWAY_KEK"})

    @field_validator("kek")
    @classmethod
    def _refs(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("expected at least one KEK reference")
        for kek_id, ref in v.items():
            if not isinstance(ref, str) or not _SECRET_REF.match(ref):
                raise ValueError(f"kek {kek_id!r}: expected env:NAME or file:PATH")
        return v


class Session(_Model):
    cookie_name: str = Field("gateway_session", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    secure: Literal["auto", True, False] = "auto"
    same_site: Literal["lax", "strict", "none"] = "lax"
    idle_timeout: Duration = 1800.0
    absolute_timeout: Duration = 43200.0


class CrossSite(_Model):
    # Refuse POST, PUT, PATCH, DELETE... whose Sec-Fetch-Site or Origin says another site sent
    # them (a rule's `cross_site_check` overrides this default).
    check: bool = False
    # Origins that may send them anyway, e.g. https://partner.example.org.
    allowed_origins: tuple[str, ...] = ()

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for origin in v:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path
                or (parts.query or parts.fragment or parts.username)
            ):
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.org")
            out.append(f"{parts.scheme}://{parts.netloc.lower()}")
        return tuple(out)


class Lockout(_Model):
    max_failures: int = Field(10, ge=1)
    window: Duration = 900.0
    duration: Duration = 1800.0
    ip_max_failures: int = Field(100, ge=1)


class Mfa(_Model):
    issuer: str = "Portcullis"
    digits: Literal[6, 7, 8] = 6
    period: int = Field(30, ge=10, le=120)
    skew: int = Field(1, ge=0, le=3)
    enforce: Literal["policy", "all"] = "policy"


class Argon2Params(_Model):
    time_cost: int = Field(2, ge=1)
    memory_cost: int = Field(19456, ge=1024)
    parallelism: int = Field(1, ge=1)


class Passwords(_Model):
    min_length: int = Field(12, ge=8, le=128)
    argon2: Argon2Params = Argon2Params()


class PolicyOptions(_Model):
    case_insensitive_paths: bool = False


class Metrics(_Model):
    listen: Listen | None = "127.0.0.1:9464"


class Audit(_Model):
    log: str = "stdout"


class PluginRef(_Model):
    use: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class Config(_Model):
    listen: Listen = "127.0.0.1:8080"
    workers: int = Field(1, ge=1, le=256)
    upstream: Upstream
    max_body: Size = 10 << 20
    trusted_proxies: tuple[str, ...] = ()
    store: StoreSettings = StoreSettings()
    keys: Keys = Keys()
    session: Session = Session()
    cross_site: CrossSite = CrossSite()
    lockout: Lockout = Lockout()
    mfa: Mfa = Mfa()
    passwords: Passwords = Passwords()
    policies: tuple[str, ...] = ("policies/*.yaml",)
    policy_options: PolicyOptions = PolicyOptions()
    default_access: Literal["public", "authenticated", "mfa", "deny"] = "deny"
    metrics: Metrics = Metrics()
    audit: Audit = Audit()
    plugins: tuple[PluginRef, ...] = ()

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _path: Path | None = PrivateAttr(default=None)

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in v:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not a CIDR such as 10.0.0.0/8") from None
        return v

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the config are resolved against."""
        return self._base_dir

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    key: str
    value: str
    expected: str

    def __str__(self) -> str:
        return f"{self.key}: {self.expected} (got {self.value})"


class ConfigError(Exception):
    """The config is invalid; `problems` lists every error found."""

    def __init__(
        self, problems: list[ConfigProblem], source: str = "config", data: object = None
    ) -> None:
        self.problems = problems
        self.source = source
        self.data = data  # the raw mapping, when the file parsed as one (never printed)
        super().__init__(
            f"{source}: {len(problems)} error(s)\n" + "\n".join(f"  - {p}" for p in problems)
        )


# Key names that may hold a secret (a misplaced `kek:`, an `api_token:` where none belongs).
_SECRET_NAME = re.compile(r"kek|key|secret|passw|token|credential", re.IGNORECASE)


def _show(key: str, value: object) -> str:
    if any(part != "passwords" and _SECRET_NAME.search(part) for part in key.split(".")):
        return "<redacted>"
    return shown_value(value)


def _problems(exc: ValidationError) -> list[ConfigProblem]:
    out = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        key = key.replace("with_", "with")
        if err["type"] == "extra_forbidden":
            out.append(ConfigProblem(key, _show(key, err["input"]), "unknown key"))
        elif err["type"] == "missing":
            out.append(ConfigProblem(key, "nothing", "required key is missing"))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            out.append(ConfigProblem(key, _show(key, err.get("input")), msg))
    return out


def parse_config(data: object, *, base_dir: Path, source: str = "config") -> Config:
    """Validate a parsed gateway.yaml. Every stage runs even when an earlier one failed (the
    schema, `keys.active`, the plugins' options), so ConfigError lists all problems at once;
    it keeps the raw mapping (`data`) so `gateway check` can still check the policies."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem("(top level)", type(data).__name__, "expected a mapping of keys")],
            source,
        )
    problems: list[ConfigProblem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems(exc))
    problems.extend(_keys_problems(config.keys if config else data.get("keys", {})))
    problems.extend(_plugin_problems(config.plugins if config else data.get("plugins"), base_dir))
    if problems or config is None:
        raise ConfigError(problems, source, data)
    config._base_dir = base_dir
    return config


def _keys_problems(keys: object) -> list[ConfigProblem]:
    """`keys.active` names a configured KEK (checked on the raw value when the schema failed;
    a `keys` block the schema refused has its errors reported already)."""
    if not isinstance(keys, Keys):
        try:
            keys = Keys.model_validate(keys if keys is not None else {})
        except ValidationError:
            return []
    if keys.active in keys.kek:
        return []
    return [
        ConfigProblem("keys.active", repr(keys.active), "expected one of the ids under keys.kek")
    ]


def _plugin_problems(refs: object, base_dir: Path) -> list[ConfigProblem]:
    """Each plugin validates its own `with:` block (imports it: no plugin at request time).
    With the schema failed, every raw entry that is a valid reference is still checked."""
    if not refs or not isinstance(refs, list | tuple):
        return []
    found: list[tuple[str, str, str]] = []
    for i, ref in enumerate(refs):
        if not isinstance(ref, PluginRef):
            try:
                ref = PluginRef.model_validate(ref)
            except ValidationError:
                continue  # the schema stage reported it
        for key, shown, expected in problems_of((ref,), base_dir):
            found.append((f"plugins.{i}" + key.removeprefix("plugins.0"), shown, expected))
    return [ConfigProblem(key, mask_urls(shown), expected) for key, shown, expected in found]


def with_listeners(
    config: Config, *, listen: str | None = None, metrics_listen: str | None = None
) -> Config:
    """`config` with the public and metrics listeners replaced (`gateway run --listen`,
    `--metrics-listen`, or their environment variables); `off` turns the metrics listener off.
    Raises ConfigError naming the flag when a value is not HOST:PORT."""
    update: dict[str, Any] = {}
    problems = []
    for key, value in (("--listen", listen), ("--metrics-listen", metrics_listen)):
        if value is None:
            continue
        if key == "--metrics-listen" and value.lower() == "off":
            update["metrics"] = config.metrics.model_copy(update={"listen": None})
            continue
        try:
            checked = _listen(value)
        except ValueError as exc:
            problems.append(ConfigProblem(key, mask_urls(repr(value)), str(exc)))
            continue
        if key == "--listen":
            update["listen"] = checked
        else:
            update["metrics"] = config.metrics.model_copy(update={"listen": checked})
    if problems:
        raise ConfigError(problems, str(config.path or "command line"))
    return config.model_copy(update=update) if update else config


def load_config(path: str | Path) -> Config:
    """Read and validate a gateway.yaml; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(path), "unreadable", exc.strerror or "readable file")], str(path)
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        raise ConfigError(
            [ConfigProblem(where, "invalid YAML", getattr(exc, "problem", None) or "valid YAML")],
            str(path),
        ) from None
    config = parse_config(data, base_dir=path.resolve().parent, source=str(path))
    config._path = path.resolve()
    return config
