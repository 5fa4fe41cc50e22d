"""A full flow — failed and successful logins, an encrypted form post, reading it back, a
tampered token, logout — then every output the gateway produced is searched for secrets: the
log records (app, access, audit), the audit stream, the metrics exposition. None may contain the
password, the KEK, the session cookie or the plaintext of an encrypted field."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, generate_latest

from tests.auth.conftest import PASSWORD, AuthGw

PLAINTEXT = "diagnosis: hypothetical-condition-7731"


async def test_no_secret_reaches_logs_audit_or_metrics(
    egw: AuthGw, store_upstream, caplog, tmp_path
):
    caplog.set_level(logging.DEBUG)
    async with egw.client() as s:
        async with s.post(
            egw.url + "/.gateway/login", json={"username": "alice", "password": PASSWORD + "x"}
        ) as r:
            assert r.status == 401
        await egw.login(s, "alice")
        cookie = egw.cookie(s)
        assert cookie
        async with s.post(egw.url + "/form/n1", data={"title": PLAINTEXT}) as r:
            assert r.status == 204
        async with s.get(egw.url + "/form/n1") as r:
            assert PLAINTEXT in await r.text()  # the user sees it...
        ctype, stored = store_upstream.bodies["n1"]
        assert PLAINTEXT.encode() not in stored  # ...the app never stored it
        async with s.post(egw.url + "/.gateway/logout", json={}) as r:
            assert r.status in (200, 204, 302, 303)

    kek = (tmp_path / "kek1").read_text().strip()
    secrets = {"password": PASSWORD, "kek": kek, "cookie": cookie, "plaintext": PLAINTEXT}
    log_text = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "login.success" in log_text  # the capture did see the gateway's output
    audit = b"\n".join(await egw.gw.services["store"].audit_tail(1000)).decode()
    assert "login.failure" in audit
    metrics = generate_latest(REGISTRY).decode()
    assert "gateway_requests_total" in metrics
    for name, secret in secrets.items():
        for where, text in (("logs", log_text), ("audit", audit), ("metrics", metrics)):
            assert secret not in text, f"the {name} appears in the {where}"
