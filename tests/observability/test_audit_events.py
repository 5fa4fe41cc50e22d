"""Audit events as an operator reads them, from `gateway audit tail` (the real CLI) and from the
audit.log file: request events carry time, user, IP, user agent, request id, rule and outcome;
a signed-in user's 403 is an `access.denied` event, a login challenge or an anonymous hit on a
deny rule is not; the first data key of a scope is one `key.created` event."""

from __future__ import annotations

import re

from tests.observability.conftest import PASSWORD, Running

UA = "obs-test/1.0"


def only(events: list[dict], **match: object) -> dict:
    found = [e for e in events if all(e.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


async def test_request_events_carry_rule_user_ip_agent_and_request_id(running: Running):
    async with running.client() as s:
        login = running.url + "/.gateway/login"
        async with s.post(
            login,
            json={"username": "alice", "password": "wrong"},
            headers={"X-Request-ID": "rid-login-bad"},
        ) as r:
            assert r.status == 401
        # anonymous: a deny rule and a browser challenge answer, but leave no audit row
        async with s.get(running.url + "/blocked/x", headers={"X-Request-ID": "rid-anon"}) as r:
            assert r.status == 403
        async with s.get(
            running.url + "/admin/x",
            headers={"X-Request-ID": "rid-redirect", "Accept": "text/html"},
            allow_redirects=False,
        ) as r:
            assert r.status == 302
        async with s.post(
            login,
            json={"username": "alice", "password": PASSWORD},
            headers={"X-Request-ID": "rid-login-ok"},
        ) as r:
            assert r.status == 200
        async with s.get(running.url + "/admin/x", headers={"X-Request-ID": "rid-403"}) as r:
            assert r.status == 403
            assert await r.json() == {"error": "forbidden"}  # no reason leaks to the client
        async with s.get(running.url + "/blocked/y", headers={"X-Request-ID": "rid-403b"}) as r:
            assert r.status == 403
        for n in (1, 2, 3):
            async with s.post(
                running.url + f"/form/n{n}",
                data={"title": f"note {n}"},
                headers={"X-Request-ID": f"rid-enc-{n}"},
            ) as r:
                assert r.status == 204

    tail = running.tail("-n", "100")
    # the file and the store hold the very same lines, in the same order
    assert running.audit_file() == tail

    bad = only(tail, event="login.failure", request_id="rid-login-bad")
    ok = only(tail, event="login.success", request_id="rid-login-ok")
    for event in (bad, ok):
        assert event["rule"] == "gateway"
        assert (event["ip"], event["user_agent"], event["user"]) == ("127.0.0.1", UA, "alice")
        # The time format of every other log line (ISO 8601, UTC, milliseconds).
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["time"])

    denied = only(tail, event="access.denied", request_id="rid-403")
    assert denied["rule"] == "admin"
    assert denied["user"] == "alice"
    assert (denied["outcome"], denied["reason"]) == ("forbidden", "role_missing")
    assert (denied["ip"], denied["user_agent"]) == ("127.0.0.1", UA)
    deny_rule = only(tail, event="access.denied", request_id="rid-403b")
    assert (deny_rule["rule"], deny_rule["reason"]) == ("blocked", "deny_rule")
    assert len([e for e in tail if e["event"] == "access.denied"]) == 2
    assert not [e for e in tail if e.get("request_id") in ("rid-anon", "rid-redirect")]

    # the first encrypted request creates alice's key: one event, with that request's fields
    created = only(tail, event="key.created")
    assert (created["scope"], created["version"], created["user"]) == ("user:alice", "1", "alice")
    assert (created["rule"], created["request_id"]) == ("form", "rid-enc-1")
    assert (created["ip"], created["user_agent"], created["outcome"]) == ("127.0.0.1", UA, "ok")

    # --user finds the user's events, the CLI-made ones (no request: rule null) included
    mine = running.tail("-n", "100", "--user", "alice")
    assert {e["event"] for e in mine} >= {"user.created", "login.success", "access.denied"}
    created_user = only(mine, event="user.created")
    assert created_user["rule"] is None and created_user["ip"] is None
    assert PASSWORD not in (running.folder / "audit.log").read_text()
