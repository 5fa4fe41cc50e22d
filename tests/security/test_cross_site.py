"""A page on another site makes the browser POST to the app behind the gateway: with the
cross-site check on (per rule, or as the default), the browser's own Sec-Fetch-Site / Origin
headers give it away and nothing reaches the app."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from tests.auth.conftest import auth_config, launch
from tests.proxy.conftest import raw_request

POLICY = """rules:
  - name: forms
    match: {paths: ["/forms/**"]}
    access: public
    cross_site_check: true
  - name: open
    match: {paths: ["/open/**"]}
    access: public
    cross_site_check: false
  - name: rest
    match: {paths: ["/**"]}
    access: public
"""
PARTNER = "https://partner.example.org"
LOOKALIKE = "https://partner.example.org.evil.test"


@pytest.fixture
async def csgw(upstream, tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "00.yaml").write_text(POLICY)
    config = auth_config(
        upstream.url,
        tmp_path,
        cross_site={"check": True, "allowed_origins": [PARTNER + ":443"]},
    )
    agw = await launch(config)
    yield agw
    await agw.runner.cleanup()


def _request(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gw.example.org", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Content-Type: application/x-www-form-urlencoded", "Content-Length: 3"]
    return ("\r\n".join(lines) + "\r\n\r\na=1").encode()


CASES = [
    ("POST", "/forms/x", {"Sec-Fetch-Site": "cross-site"}, 403),
    ("POST", "/forms/x", {"Sec-Fetch-Site": "same-site"}, 403),  # a sibling subdomain
    ("POST", "/forms/x", {"Sec-Fetch-Site": "same-origin"}, 200),
    ("POST", "/forms/x", {"Sec-Fetch-Site": "none"}, 200),  # typed in, a bookmark
    ("POST", "/forms/x", {"Sec-Fetch-Site": "cross-site", "Origin": PARTNER}, 200),
    ("POST", "/forms/x", {"Sec-Fetch-Site": "cross-site", "Origin": LOOKALIKE}, 403),
    ("POST", "/forms/x", {"Sec-Fetch-Site": "bogus"}, 403),
    ("POST", "/forms/x", {"Origin": "https://evil.example"}, 403),  # no Sec-Fetch-Site
    ("POST", "/forms/x", {"Origin": "null"}, 403),  # sandboxed iframe, data: URL
    ("POST", "/forms/x", {"Origin": "http://gw.example.org"}, 200),  # the gateway's own
    ("POST", "/forms/x", {"Origin": "http://gw.example.org:8080"}, 403),  # another port
    ("POST", "/forms/x", {}, 200),  # not a browser: curl, a script
    ("GET", "/forms/x", {"Sec-Fetch-Site": "cross-site"}, 200),  # safe method
    ("DELETE", "/forms/x", {"Origin": "https://evil.example"}, 403),
    ("PATCH", "/forms/x", {"Sec-Fetch-Site": "cross-site"}, 403),
    ("POST", "/open/x", {"Sec-Fetch-Site": "cross-site"}, 200),  # the rule turned it off
    ("POST", "/other", {"Sec-Fetch-Site": "cross-site"}, 403),  # the config's default
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "headers", "status"), CASES)
async def test_cross_site_requests_are_refused_where_the_check_is_on(
    csgw, method, path, headers, status
):
    port = int(csgw.url.rsplit(":", 1)[1])
    got, raw = await raw_request(port, _request(method, path, headers))
    assert got == status, raw[-300:]
    if status == 403:
        body = json.loads(raw.partition(b"\r\n\r\n")[2])
        assert body["error"] == "cross_site_request"


async def test_a_refusal_is_audited_and_counted_and_never_forwarded(csgw, upstream):
    port = int(csgw.url.rsplit(":", 1)[1])

    def refused() -> float:
        return REGISTRY.get_sample_value("gateway_cross_site_refused_total", {"rule": "forms"}) or 0

    before = refused()
    seen_before = len(upstream.seen)
    got, _ = await raw_request(
        port, _request("POST", "/forms/x", {"Origin": "https://evil.example"})
    )
    assert got == 403
    assert refused() == before + 1
    events = [json.loads(e) for e in await csgw.auth.audit.store.audit_tail(10)]
    event = next(e for e in reversed(events) if e["event"] == "request.cross_site")
    assert (event["outcome"], event["reason"], event["rule"]) == (
        "refused",
        "origin_mismatch",
        "forms",
    )
    assert len(upstream.seen) == seen_before


def test_an_allowed_origin_that_is_not_an_origin_is_a_config_error(tmp_path):
    from gateway.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "upstream": {"url": "http://127.0.0.1:9"},
                "cross_site": {"allowed_origins": ["https://a.example/path"]},
            },
            base_dir=tmp_path,
        )
    (problem,) = err.value.problems
    assert problem.key == "cross_site.allowed_origins"
    assert "is not an origin such as https://app.example.org" in problem.expected
