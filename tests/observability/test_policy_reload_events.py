"""Policy reloads of the running gateway (file change and SIGHUP) leave audit events; a broken
file leaves a `policy.reload_failed` event naming the file and key, never the offending value,
while the old policy keeps serving."""

from __future__ import annotations

import signal

from gateway.policy import PolicyProblem, ReloadResult
from gateway.startup.audit_events import problems_text
from tests.observability.conftest import POLICY, Running, wait_until
from tests.policy.test_reload import write

BROKEN = POLICY.replace("access: deny", "access: hunter2-is-not-a-level")
OPENED = """rules:
  - name: admin
    match: {paths: ["/admin/**"]}
    access: authenticated
  - name: blocked-now-open
    match: {paths: ["/blocked/**"]}
    access: public
  - name: open
    match: {paths: ["/**"]}
    access: public
"""


def events(running: Running, name: str) -> list[dict]:
    return [e for e in running.audit_file() if e["event"] == name]


async def status(running: Running, path: str) -> int:
    async with running.client() as s, s.get(running.url + path) as r:
        return r.status


async def test_reloads_and_a_broken_file_each_leave_an_event_while_the_old_policy_serves(
    running: Running,
):
    main = running.folder / "policies" / "10-main.yaml"
    assert await status(running, "/blocked/x") == 403

    write(main, BROKEN)
    [failed] = wait_until(lambda: events(running, "policy.reload_failed"), "the failed reload")
    assert failed["outcome"] == "error" and failed["errors"] == "1"
    assert "10-main.yaml" in failed["error"] and "rules[2].access" in failed["error"]
    assert "hunter2" not in failed["error"]
    assert (failed["user"], failed["rule"], failed["request_id"]) == (None, None, None)
    assert await status(running, "/blocked/x") == 403  # the old policy still serves
    assert await status(running, "/anything") == 200

    write(main, OPENED)
    [reloaded] = wait_until(lambda: events(running, "policy.reloaded"), "the file reload")
    assert (reloaded["outcome"], reloaded["rules"], reloaded["files"]) == ("ok", "3", "1")
    assert await status(running, "/blocked/x") == 200

    running.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: len(events(running, "policy.reloaded")) == 2, "the SIGHUP reload")

    tail = [e["event"] for e in running.tail("-n", "20") if e["event"].startswith("policy.")]
    assert tail == ["policy.reload_failed", "policy.reloaded", "policy.reloaded"]
    scraped = running.scrape()
    assert scraped[("gateway_policy_reloads_total", frozenset({("result", "error")}))] == 1
    assert scraped[("gateway_policy_reloads_total", frozenset({("result", "ok")}))] == 2
    assert scraped[("gateway_policy_rules", frozenset())] == 3  # the watcher's reload set it
    assert "hunter2" not in str(running.tail("-n", "20"))


def test_reload_error_text_names_file_rule_and_key_of_the_first_five_only():
    problems = tuple(
        PolicyProblem(f"/etc/gw/policies/{n}.yaml", "r", f"rules[{n}].access", "hunter2", "a level")
        for n in range(7)
    )
    text = problems_text(ReloadResult(False, problems))
    assert text.startswith("0.yaml: rule r: rules[0].access: expected a level; 1.yaml")
    assert "4.yaml" in text and "5.yaml" not in text and text.endswith("; and 2 more")
    assert "hunter2" not in text and "/etc/gw" not in text
