"""security_headers: browser hardening headers on proxied answers and on the gateway's pages.

Adds HSTS (only when the client reached us over TLS, as seen through trusted proxies),
`X-Content-Type-Options: nosniff`, `Referrer-Policy`, `X-Frame-Options` and, for the gateway's
own pages (/.gateway/*), a strict `Content-Security-Policy` without inline script. Headers the
upstream set are kept unless `override: true`. Options can be changed or switched off per
policy rule (`rules: {NAME: {...}}` or `rules: {NAME: false}`). Never reads bodies.
"""

from __future__ import annotations

from typing import Literal

from multidict import CIMultiDict
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.http.exchange import Exchange

__all__ = ["Plugin"]

GATEWAY_RULE = "gateway"  # the rule name the gateway's own endpoints are answered under
GATEWAY_CSP = (
    "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class Headers(BaseModel):
    """One set of header settings; every field of a per-rule override is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hsts: bool | None = None
    hsts_max_age: int | None = Field(None, ge=0)
    hsts_include_subdomains: bool | None = None
    content_type_options: bool | None = None
    referrer_policy: str | None = None
    frame_options: Literal["DENY", "SAMEORIGIN", "off"] | None = None
    content_security_policy: str | None = None
    override: bool | None = None
    enabled: bool = True  # `rules: {NAME: false}` is `{enabled: false}`

    @field_validator("referrer_policy", "content_security_policy", check_fields=False)
    @classmethod
    def _header_value(cls, v: str | None) -> str | None:
        if v is not None and any(ord(ch) < 32 or ord(ch) == 127 for ch in v):
            raise ValueError("expected a header value without control characters")
        return v


class Options(Headers):
    hsts: bool = True
    hsts_max_age: int = Field(31536000, ge=0)
    hsts_include_subdomains: bool = False
    content_type_options: bool = True
    referrer_policy: str = "strict-origin-when-cross-origin"
    frame_options: Literal["DENY", "SAMEORIGIN", "off"] = "DENY"
    content_security_policy: str = ""  # for proxied answers; empty: none added
    override: bool = False
    gateway_csp: str = Field(GATEWAY_CSP, pattern=r"^[^\x00-\x1f\x7f]*$")
    rules: dict[str, Headers] = Field(default_factory=dict)

    @field_validator("rules", mode="before")
    @classmethod
    def _switches(cls, v: object) -> object:
        if isinstance(v, dict):
            return {k: {"enabled": r} if isinstance(r, bool) else r for k, r in v.items()}
        return v


def _merged(options: Options, rule: Headers | None) -> dict[str, object]:
    merged = options.model_dump(exclude={"rules", "gateway_csp", "enabled"})
    if rule is not None:
        merged.update(rule.model_dump(exclude_none=True, exclude={"enabled"}))
    return merged


def _headers_for(merged: dict[str, object]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    if merged["content_type_options"]:
        out.append(("X-Content-Type-Options", "nosniff"))
    if merged["referrer_policy"]:
        out.append(("Referrer-Policy", merged["referrer_policy"]))
    if merged["frame_options"] != "off":
        out.append(("X-Frame-Options", merged["frame_options"]))
    if merged["content_security_policy"]:
        out.append(("Content-Security-Policy", merged["content_security_policy"]))
    return tuple(out)


def _hsts(merged: dict[str, object]) -> str | None:
    if not merged["hsts"]:
        return None
    value = f"max-age={merged['hsts_max_age']}"
    return value + "; includeSubDomains" if merged["hsts_include_subdomains"] else value


class Plugin:
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options
        # Precomputed per rule: the hook does no parsing on the request path.
        self._default = self._compile(None) if options.enabled else None
        self._rules: dict[str, tuple | None] = {}
        for name, rule in options.rules.items():
            self._rules[name] = self._compile(rule) if rule.enabled else None

    def _compile(self, rule: Headers | None) -> tuple:
        merged = _merged(self.options, rule)  # a rule's `override`, if set, wins too
        return (_headers_for(merged), _hsts(merged), merged["override"])

    async def after_response(self, ex: Exchange, headers: CIMultiDict[str]) -> None:
        compiled = self._rules.get(ex.rule_name, self._default)
        if compiled is None:  # switched off for this rule
            return
        fixed, hsts, override = compiled
        for name, value in fixed:
            if override or name not in headers:
                headers[name] = value
        if ex.rule_name == GATEWAY_RULE and "Content-Security-Policy" not in headers:
            headers["Content-Security-Policy"] = self.options.gateway_csp
        # HSTS over plain http is ignored by browsers and would be a lie; only over TLS.
        if (
            hsts is not None
            and ex.view.proto == "https"
            and (override or "Strict-Transport-Security" not in headers)
        ):
            headers["Strict-Transport-Security"] = hsts
