"""`gateway check` reports the key material `gateway run` would stop on, as an operator reads
it: which KEK, where it is read from, what to do next, and never the value."""

from __future__ import annotations

import base64

import pytest

from tests.config.test_config import cli

NEXT = (
    "make one with `gateway keys generate` and give it as GATEWAY_KEK (or keys.kek.<id>: "
    "file:PATH); for a local trial only, `gateway run --dev` keeps one in var/dev-kek"
)
NOT_B64 = "not-a-key!!secretish"
SHORT = base64.b64encode(b"k" * 16).decode()


@pytest.fixture
def conf(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "00.yaml").write_text(
        "rules:\n  - {name: all, match: {paths: ['/**']}, access: public}\n"
    )
    path = tmp_path / "gateway.yaml"
    path.write_text("upstream: {url: 'http://127.0.0.1:9'}\n")
    return path


CASES = [
    ("unset", {"GATEWAY_KEK": ""}, None, "environment variable GATEWAY_KEK is not set"),
    ("not base64", {"GATEWAY_KEK": NOT_B64}, None,
     "environment variable GATEWAY_KEK is not valid base64"),
    ("16 bytes", {"GATEWAY_KEK": SHORT}, None,
     "environment variable GATEWAY_KEK must decode to 32 bytes, got 16"),
    ("missing file", {}, "file:nope.key", "does not exist"),
]  # fmt: skip


@pytest.mark.parametrize(("env", "ref", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_names_the_key_problem_and_the_next_step(conf, env, ref, says):
    if ref:
        conf.write_text(conf.read_text() + f"keys: {{kek: {{default: '{ref}'}}}}\n")
    done = cli("check", "-c", str(conf), env=env)
    assert done.returncode == 1
    (line, summary) = done.stderr.splitlines()
    assert line.startswith(f"{conf.resolve()}: keys.kek: kek 'default'")
    assert says in line and line.endswith(NEXT)
    assert summary == "invalid: 1 error(s)"
    assert NOT_B64 not in done.stderr + done.stdout and SHORT not in done.stderr


def test_run_says_the_same_next_step_and_exits_2(conf):
    done = cli("run", "-c", str(conf), env={"GATEWAY_KEK": NOT_B64})
    assert done.returncode == 2
    assert NEXT in done.stderr and NOT_B64 not in done.stderr


def test_check_dev_accepts_a_kek_that_run_dev_would_make(conf):
    done = cli("check", "--dev", "-c", str(conf), env={"GATEWAY_KEK": ""})
    assert done.returncode == 0, done.stderr
    # --dev forgives only a KEK that is not set, never a malformed one.
    done = cli("check", "--dev", "-c", str(conf), env={"GATEWAY_KEK": SHORT})
    assert done.returncode == 1 and "must decode to 32 bytes" in done.stderr


def test_check_is_ok_with_a_good_kek(conf):
    from gateway.crypto.keyring import generate_kek

    done = cli("check", "-c", str(conf), env={"GATEWAY_KEK": generate_kek()})
    assert done.returncode == 0 and done.stdout.startswith("ok: ")
