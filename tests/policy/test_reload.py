"""Hot reload: valid edits are applied whole, invalid ones never replace the running policy."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from gateway.policy import PolicyError, PolicyHolder

V1 = """
rules:
  - {name: admin, match: {paths: ["/admin/**"]}, access: mfa, roles: [admin]}
  - {name: open, match: {paths: ["/**"]}, access: public}
"""
V2 = """
rules:
  - {name: admin, match: {paths: ["/admin/**"]}, access: deny}
  - {name: open-v2, match: {paths: ["/**"]}, access: authenticated}
"""
BROKEN = """
rules:
  - {name: admin, match: {paths: ["/admin/**"]}, access: public}
  - {name: bad, match: {paths: ["re:("]}, access: nope}
"""


def write(path: Path, text: str) -> None:
    """Write and move the mtime forward, so even a coarse-mtime filesystem sees the change."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    after = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(after, after))


@pytest.fixture
def setup(tmp_path: Path):
    folder = tmp_path / "policies"
    folder.mkdir()
    main = folder / "10-main.yaml"
    write(main, V1)
    results: list[str] = []
    holder = PolicyHolder(
        ["policies/*.yaml"],
        base_dir=tmp_path,
        default_access="deny",
        case_insensitive_paths=False,
        on_reload=lambda result: results.append(result.result),
    )
    return holder, main, results


def admin_rule(holder: PolicyHolder) -> str:
    rule = holder.current.match("GET", "h", "/admin/x", "127.0.0.1")
    return f"{rule.name}:{rule.access}"


def test_invalid_policy_at_start_up_raises_with_every_problem(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "a.yaml").write_text(BROKEN)
    with pytest.raises(PolicyError) as info:
        PolicyHolder(
            ["policies/*.yaml"], base_dir=tmp_path, default_access="deny",
            case_insensitive_paths=False,
        )  # fmt: skip
    assert len(info.value.problems) == 2


def test_valid_change_is_applied_on_reload(setup) -> None:
    holder, main, results = setup
    old = holder.current
    write(main, V2)
    result = holder.reload()
    assert (result.ok, result.errors, results) == (True, (), ["ok"])
    assert admin_rule(holder) == "admin:deny"
    assert holder.current is not old
    # a request that started before the reload still holds the old, intact set
    assert old.match("GET", "h", "/admin/x", "127.0.0.1").access == "mfa"


def test_invalid_change_keeps_the_old_policy_and_reports_errors(setup, caplog) -> None:
    holder, main, results = setup
    old = holder.current
    write(main, BROKEN)
    result = holder.reload()
    assert not result.ok and result.result == "error"
    assert {(p.rule, p.key) for p in result.errors} == {
        ("bad", "rules[1].access"),
        ("bad", "rules[1].match.paths[0]"),
    }
    assert results == ["error"]
    assert holder.current is old
    assert admin_rule(holder) == "admin:mfa"
    assert "keeping the current policy" in caplog.text


def test_deleting_every_policy_file_keeps_the_old_policy(setup) -> None:
    holder, main, results = setup
    main.unlink()
    assert not holder.reload().ok
    assert admin_rule(holder) == "admin:mfa"


def test_failing_metrics_hook_does_not_break_reload(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    write(tmp_path / "policies" / "a.yaml", V1)

    def hook(result: object) -> None:
        raise RuntimeError("metrics down")

    holder = PolicyHolder(
        ["policies/*.yaml"], base_dir=tmp_path, default_access="deny",
        case_insensitive_paths=False, on_reload=hook,
    )  # fmt: skip
    write(tmp_path / "policies" / "a.yaml", V2)
    assert holder.reload().ok
    assert admin_rule(holder) == "admin:deny"


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_watch_picks_up_an_edit_and_a_new_file_and_survives_a_bad_edit(setup) -> None:
    holder, main, results = setup
    task = asyncio.create_task(holder.watch(interval=0.02))
    try:
        write(main, V2)
        await wait_for(lambda: admin_rule(holder) == "admin:deny")
        write(main, BROKEN)
        await wait_for(lambda: results[-1:] == ["error"])
        assert admin_rule(holder) == "admin:deny"
        write(main, V1)
        await wait_for(lambda: admin_rule(holder) == "admin:mfa")
        write(
            main.parent / "05-first.yaml",
            "rules: [{name: early, match: {paths: ['/admin/x']}, access: deny}]",
        )
        await wait_for(lambda: admin_rule(holder) == "early:deny")
        assert results == ["ok", "error", "ok", "ok"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_unchanged_files_are_not_reloaded_by_the_watcher(setup) -> None:
    holder, main, results = setup
    assert not holder.changed()
    write(main, V1)
    assert holder.changed()
    holder.reload()
    assert not holder.changed()


def test_many_concurrent_matches_during_reloads_all_succeed(setup) -> None:
    holder, main, _ = setup
    answers: set[str] = set()
    failures: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                policy = holder.current
                rule = policy.match("GET", "h", "/admin/x", "127.0.0.1")
                other = policy.match("GET", "h", "/else", "127.0.0.1")
                # both answers come from the same, whole set
                answers.add(f"{rule.name}:{rule.access}|{other.name}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    try:
        for i in range(15):
            write(main, (V2, BROKEN, V1)[i % 3])
            holder.reload()
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert failures == []
    assert answers <= {"admin:mfa|open", "admin:deny|open-v2"}
    assert answers == {"admin:mfa|open", "admin:deny|open-v2"}


async def test_concurrent_requests_in_the_event_loop_during_watch_reloads(setup) -> None:
    holder, main, _ = setup
    task = asyncio.create_task(holder.watch(interval=0.01))

    async def request(i: int) -> str:
        await asyncio.sleep((i % 10) / 1000)
        return holder.current.match("GET", "h", "/admin/x", "127.0.0.1").access

    try:
        seen: set[str] = set()
        for round_ in range(10):
            write(main, (V2, V1)[round_ % 2])
            seen |= set(await asyncio.gather(*(request(i) for i in range(200))))
        assert seen <= {"mfa", "deny"}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
