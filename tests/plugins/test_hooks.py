"""Every hook is called with the right data, at the right step, and a plugin that raises
fails its request closed (the upstream receives nothing), is counted and logged without its
exception text, and never takes the gateway down."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from gateway.startup.assemble import StartupError, build
from tests.auth.conftest import PASSWORD
from tests.plugins import recording_plugin
from tests.plugins.recording_plugin import CALLS, LEAK
from tests.proxy.conftest import gateway_config

USE = "tests.plugins.recording_plugin"


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()
    yield
    CALLS.clear()


def errors(hook: str) -> float:
    return (
        REGISTRY.get_sample_value("gateway_plugin_errors_total", {"plugin": USE, "hook": hook})
        or 0.0
    )


def calls(hook: str) -> list[tuple]:
    return [c for c in CALLS if c[0] == hook]


async def test_hooks_see_rule_identity_and_headers_of_a_proxied_request(plugin_gateway, recorder):
    gw = await plugin_gateway([{"use": USE, "with": {"tag": "t1"}}])
    assert calls("on_startup") == [("on_startup", USE, True, True)]
    async with gw.client() as s:
        async with s.get(gw.url + "/private/x", headers={"X-Test-User": "robot"}) as r:
            assert r.status == 200
            assert r.headers["X-Plugin-After"] == "t1"
    seen = recorder.seen[-1]["headers"]
    assert seen["X-Forwarded-User"] == "robot" and seen["X-Forwarded-Groups"] == "tester"
    assert seen["X-Plugin-Tag"] == "t1"
    assert calls("on_request") == [("on_request", "private", "/private/x", None)]
    assert calls("authenticate") == [("authenticate", "private", False)]
    assert calls("before_forward") == [("before_forward", "private", "robot", "robot")]
    assert calls("after_response") == [
        ("after_response", "private", "application/json; charset=utf-8")
    ]


async def test_authenticate_returning_none_leaves_the_request_anonymous(plugin_gateway, recorder):
    gw = await plugin_gateway([{"use": USE}])
    async with gw.client() as s:
        async with s.get(gw.url + "/private/x", headers={"Accept": "application/json"}) as r:
            assert r.status == 401
            assert await r.json() == {"error": "authentication_required"}
        async with s.get(gw.url + "/open/x") as r:
            assert r.status == 200
    assert len(recorder.seen) == 1 and "X-Forwarded-User" not in recorder.seen[0]["headers"]


async def test_a_session_identity_comes_first_and_the_plugin_is_not_asked(plugin_gateway):
    gw = await plugin_gateway([{"use": USE}])
    await gw.gw.services["auth"].users.add("alice", PASSWORD, roles=["staff"])
    async with gw.client() as s:
        await gw.login(s)
        async with s.get(gw.url + "/private/x", headers={"X-Test-User": "robot"}) as r:
            assert r.status == 200
    assert calls("authenticate") == []
    assert calls("before_forward")[-1][2] == "alice"
    # the audit observer saw the login, without any secret
    assert ("on_audit", "login.success", "alice", "authenticated") in CALLS
    assert not any(PASSWORD in repr(c) for c in CALLS)


async def test_password_check_hook_refuses_on_the_password_endpoint(plugin_gateway):
    gw = await plugin_gateway([{"use": USE, "with": {"refuse_password": "a refused passphrase"}}])
    await gw.gw.services["auth"].users.add("alice", PASSWORD)
    assert calls("check_password") == [("check_password", "alice", len(PASSWORD))]
    async with gw.client() as s:
        await gw.login(s)
        body = {"current_password": PASSWORD, "new_password": "a refused passphrase"}
        async with s.post(gw.url + "/.gateway/password", json=body) as r:
            assert r.status == 400
            assert await r.json() == {"error": "password_rejected", "reason": "recorder_refuses"}
        body["new_password"] = "an accepted passphrase"
        async with s.post(gw.url + "/.gateway/password", json=body) as r:
            assert r.status == 200
    assert ("on_audit", "password.changed", "alice", "changed") in CALLS


async def test_gateway_pages_get_after_response_too(plugin_gateway):
    gw = await plugin_gateway([{"use": USE, "with": {"tag": "gp"}}])
    async with gw.client() as s:
        async with s.get(gw.url + "/.gateway/healthz") as r:
            assert r.status == 200 and r.headers["X-Plugin-After"] == "gp"
    assert calls("after_response") == [("after_response", "gateway", "application/json")]
    assert calls("on_request") == []  # the gateway's own endpoints match no policy rule


@pytest.mark.parametrize("hook", ["on_request", "authenticate", "before_forward"])
async def test_a_plugin_that_raises_fails_the_request_closed(
    plugin_gateway, recorder, caplog, hook
):
    gw = await plugin_gateway([{"use": USE, "with": {"fail": hook}}])
    before = errors(hook)
    caplog.set_level(logging.INFO)
    async with gw.client() as s:
        for path in ("/private/x", "/open/x"):
            async with s.get(gw.url + path, headers={"X-Test-User": "robot"}) as r:
                assert r.status == 500
                text = await r.text()
                assert await r.json() == {"error": "plugin_error"}
                assert LEAK not in text and "Traceback" not in text
        async with s.get(gw.url + "/.gateway/healthz") as r:
            assert r.status == 200  # the gateway lives on
    assert recorder.seen == []  # SECURITY: nothing reached the upstream unchecked
    assert errors(hook) == before + 2
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "plugin failed" in logged and "RuntimeError" in logged and LEAK not in logged


async def test_after_response_failure_withholds_the_upstream_answer(plugin_gateway, recorder):
    gw = await plugin_gateway([{"use": USE, "with": {"fail": "after_response"}}])
    before = errors("after_response")
    async with gw.client() as s:
        async with s.get(gw.url + "/open/x?set=X-Upstream:1") as r:
            assert r.status == 500 and "X-Upstream" not in r.headers
            assert await r.json() == {"error": "plugin_error"}
    assert errors("after_response") == before + 1


async def test_a_failing_password_check_refuses_the_password(plugin_gateway):
    gw = await plugin_gateway([{"use": USE, "with": {"fail": "check_password"}}])
    before = errors("check_password")
    with pytest.raises(ValueError, match="password_check_failed") as info:
        await gw.gw.services["auth"].users.add("alice", PASSWORD)
    assert LEAK not in str(info.value)
    assert errors("check_password") == before + 1
    assert await gw.gw.services["auth"].users.get("alice") is None


async def test_a_failing_audit_observer_is_counted_and_the_login_still_works(plugin_gateway):
    gw = await plugin_gateway([{"use": USE, "with": {"fail": "on_audit"}}])
    await gw.gw.services["auth"].users.add("alice", PASSWORD)
    before = errors("on_audit")
    async with gw.client() as s:
        await gw.login(s)
        async with s.get(gw.url + "/private/x") as r:
            assert r.status == 200
    assert errors("on_audit") == before + 1


async def test_start_up_failure_stops_the_worker_naming_the_plugin(recorder, tmp_path):
    config = gateway_config(
        recorder.url, tmp_path, plugins=[{"use": USE, "with": {"fail": "on_startup"}}]
    )
    with pytest.raises(StartupError) as info:
        await build(config)
    assert USE in str(info.value) and LEAK not in str(info.value)
    assert info.value.exit_code == 1


async def test_shutdown_hook_runs_at_clean_up(plugin_gateway):
    gw = await plugin_gateway([{"use": USE, "with": {"tag": "bye"}}])
    await gw.runner.cleanup()
    assert calls("on_shutdown") == [("on_shutdown", "bye")]


def test_recording_plugin_is_a_plain_class():
    assert recording_plugin.Plugin.Options is recording_plugin.Options


async def test_a_plugin_whose_constructor_raises_stops_start_up_cleanly(
    recorder, tmp_path, monkeypatch
):
    from tests.plugins import no_options_plugin

    monkeypatch.setattr(no_options_plugin, "Plugin", no_options_plugin.Exploding)
    config = gateway_config(
        recorder.url, tmp_path, plugins=[{"use": "tests.plugins.no_options_plugin"}]
    )
    with pytest.raises(StartupError) as info:
        await build(config)
    assert str(info.value) == (
        "plugin tests.plugins.no_options_plugin: could not be created (RuntimeError)"
    )
