"""ip_allowlist: policy rules that only some networks may reach.

`rules: {RULE_NAME: [CIDR, ...]}`. A request matching a listed rule from a client IP outside
its CIDRs gets 403 `{"error":"forbidden","reason":"ip_not_allowed"}` before identity and
access are looked at (no login page is offered to an address that may never use the route).
The client IP is the gateway's view of it: the socket peer, or the X-Forwarded-For hop
believed through `trusted_proxies`; headers from untrusted peers never count.
"""

from __future__ import annotations

import ipaddress
import logging

from aiohttp import web
from pydantic import BaseModel, ConfigDict, field_validator

from gateway.http.errors import json_response
from gateway.http.exchange import Exchange

__all__ = ["Plugin"]

log = logging.getLogger("gateway.plugins.ip_allowlist")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: dict[str, tuple[str, ...]]

    @field_validator("rules")
    @classmethod
    def _cidrs(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for rule, cidrs in v.items():
            if not cidrs:
                raise ValueError(f"rule {rule!r}: expected at least one CIDR")
            for cidr in cidrs:
                try:
                    ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    raise ValueError(
                        f"rule {rule!r}: {cidr!r} is not a CIDR such as 10.0.0.0/8"
                    ) from None
        return v


class Plugin:
    Options = Options

    def __init__(self, options: Options) -> None:
        self.rules: dict[str, tuple[Network, ...]] = {
            rule: tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
            for rule, cidrs in options.rules.items()
        }

    def allowed(self, rule: str, ip: str) -> bool:
        nets = self.rules.get(rule)
        if nets is None:
            return True
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False  # SECURITY: an unparsable address is never inside a list
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in nets)

    async def on_request(self, ex: Exchange) -> web.StreamResponse | None:
        if self.allowed(ex.rule_name, ex.view.ip):
            return None
        log.info(
            "ip not allowed",
            extra={"fields": {"rule": ex.rule_name, "client_ip": ex.view.ip, "request_id": ex.rid}},
        )
        return json_response({"error": "forbidden", "reason": "ip_not_allowed"}, 403)
