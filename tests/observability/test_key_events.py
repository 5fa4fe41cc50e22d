"""`gateway keys rotate` and `gateway keys rewrap` leave audit events, failures included, in
`gateway audit tail` and in audit.log; never key material."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from gateway.crypto.keyring import generate_kek
from tests.observability.conftest import events_in, gateway_cli, write_config


def use_keys(config: Path, active: str, *known: str) -> None:
    data = yaml.safe_load(config.read_text())
    data["keys"] = {"active": active, "kek": {k: f"file:{k}" for k in known}}
    config.write_text(yaml.safe_dump(data))


def ok(config: Path, *argv: str) -> str:
    res = gateway_cli(config, *argv)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_rotate_and_rewrap_via_the_cli_leave_events_with_counts_and_failures(tmp_path: Path):
    config = write_config(tmp_path, "http://127.0.0.1:9")
    for name in ("k1", "k2", "k3"):
        (tmp_path / name).write_text(generate_kek() + "\n")
    use_keys(config, "k1", "k1")
    added = gateway_cli(config, "users", "add", "alice", "--password-stdin", stdin="x" * 16)
    assert added.returncode == 0, added.stderr
    ok(config, "keys", "rotate", "user:alice")  # no key yet: version 1
    use_keys(config, "k3", "k3")
    ok(config, "keys", "rotate", "role:staff")
    bad = gateway_cli(config, "keys", "rotate", "nonsense scope")
    assert bad.returncode == 1

    # k1 is gone: alice's row cannot be rewrapped, staff's row (k3) can
    use_keys(config, "k2", "k2", "k3")
    partial_run = gateway_cli(config, "keys", "rewrap")
    assert partial_run.returncode == 1, partial_run.stderr  # a row left behind is a failure
    assert "could not be rewrapped" in partial_run.stderr
    # k1 is back: alice's row is rewrapped now, staff's is already under k2
    use_keys(config, "k2", "k1", "k2")
    ok(config, "keys", "rewrap")

    tail = events_in(ok(config, "audit", "tail", "-n", "50"))
    assert events_in((tmp_path / "audit.log").read_text()) == tail
    tail = [e for e in tail if e["event"].startswith("key.")]
    assert [e["event"] for e in tail] == [
        "key.rotated",
        "key.rotated",
        "key.rotate_failed",
        "key.rewrapped",
        "key.rewrapped",
    ]
    r1, r3, failed, partial, done = tail
    assert (r1["scope"], r1["version"], r1["user"], r1["outcome"]) == (
        "user:alice",
        "1",
        "alice",
        "ok",
    )
    assert (r3["scope"], r3["version"], r3["user"]) == ("role:staff", "1", None)
    assert (failed["outcome"], failed["error"], failed["scope"]) == (
        "error",
        "ValueError",
        "nonsense scope",
    )
    assert partial["outcome"] == "partial"
    assert (partial["rewrapped"], partial["current"], partial["failed"]) == ("1", "0", "1")
    assert partial["failed_rows"] == "user:alice#0000000001"
    assert (partial["mfa_rewrapped"], partial["mfa_failed"]) == ("0", "0")  # no MFA users
    assert done["outcome"] == "ok" and "failed_rows" not in done
    assert (done["rewrapped"], done["current"], done["failed"]) == ("1", "1", "0")
    for event in tail:  # CLI actions: no request, so no rule, IP or request id
        assert (event["rule"], event["ip"], event["request_id"]) == (None, None, None)

    text = (tmp_path / "audit.log").read_text()
    for name in ("k1", "k2", "k3"):
        kek = (tmp_path / name).read_text().strip()
        assert kek not in text and base64.b64decode(kek).hex() not in text
