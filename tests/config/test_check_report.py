"""`gateway check` as an operator runs it (DESIGN.md section 3): every problem of every stage in
one run (schema, keys.active, plugin options, policies), each line naming its key, and never a
secret in the output, wherever in the file it was written."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.config.test_config import cli

BAD_POLICY = "rules:\n  - {name: a, match: {paths: [x]}, access: maybe}\n"


def write(folder: Path, data: dict, policy: str | None = BAD_POLICY) -> Path:
    if policy is not None:
        (folder / "rules").mkdir(exist_ok=True)
        (folder / "rules" / "10-app.yaml").write_text(policy)
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def lines_of(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if not line.startswith("invalid:")]


def test_check_reports_schema_keys_plugins_and_policies_in_one_run(tmp_path):
    config = write(tmp_path, {
        "upstream": {"url": "ftp://nowhere"},
        "mystery": True,
        "keys": {"active": "nope", "kek": {"a": "env:GATEWAY_KEK"}},
        "plugins": [
            {"use": "plugins.api_keys", "with": {"bogus_option": 1}},
            {"use": "not a module name!"},
            {"use": "plugins.api_keys", "with": {"last_used_interval": -5}},
        ],
        "policies": ["rules/*.yaml"],
    })  # fmt: skip
    res = cli("check", "-c", str(config))
    assert res.returncode == 1
    out = lines_of(res)
    for key in (
        "upstream.url",
        "mystery",
        "keys.active",
        "plugins.0.with.bogus_option",
        "plugins.1.use",
        "plugins.2.with.last_used_interval",
        "10-app.yaml: rule a: rules[0].access",
    ):
        assert sum(key in line for line in out) == 1, (key, out)
    assert f"invalid: {len(out)} error(s)" in res.stderr
    assert "Traceback" not in res.stderr


def test_policies_of_an_invalid_config_are_checked_from_the_default_glob(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "00.yaml").write_text(BAD_POLICY)
    config = write(tmp_path, {"listen": "nohost", "policies": "not a list"}, policy=None)
    res = cli("check", "-c", str(config))
    assert res.returncode == 1
    out = lines_of(res)
    assert any("listen" in line for line in out) and any("policies" in line for line in out)
    assert any(line.startswith("00.yaml: rule a: rules[0].access") for line in out), out
    # No policy file at all is a problem too, reported with the config's.
    (tmp_path / "policies" / "00.yaml").unlink()
    res = cli("check", "-c", str(config))
    assert res.returncode == 1 and "policies/*.yaml" in res.stderr and "listen" in res.stderr


def test_a_valid_config_with_valid_policies_still_passes(tmp_path):
    config = write(
        tmp_path,
        {"upstream": {"url": "http://127.0.0.1:9"}, "policies": ["rules/*.yaml"]},
        policy="rules:\n  - {name: all, match: {paths: ['/**']}, access: public}\n",
    )
    res = cli("check", "-c", str(config))
    assert res.returncode == 0 and res.stderr == "" and "is valid" in res.stdout


SECRETS = {
    "kek": "c3VwZXJzZWNyZXRrZXlieXRlcw==",
    "url_password": "upw-4f9a",
    "store_password": "dbpw-77c1",
    "plugin_url_password": "hookpw-31b",
    "token": "tok-0d2e91",
    "dict_password": "dictpw-8e1",
    "user_as_token": "ghp_userinfo5a",
}


def test_check_never_prints_a_secret_wherever_it_is_written(tmp_path):
    s = SECRETS
    config = write(tmp_path, {
        "upstream": {"url": f"http://admin:{s['url_password']}@app.internal:9/x?q=1"},
        "store": {"url": f"mysql://root:{s['store_password']}@db/gw"},
        "kek": {"default": s["kek"]},  # misplaced: belongs under keys.kek as env:/file:
        "api_token": s["token"],
        "mystery": {"password": s["dict_password"]},
        "audit": {"log": 5, "webhook": f"https://{s['user_as_token']}@hooks.example/x"},
        "plugins": [
            {"use": "plugins.api_keys",
             "with": {"webhook": f"https://u:{s['plugin_url_password']}@x.example/"}},
        ],
    }, policy=None)  # fmt: skip
    res = cli("check", "-c", str(config))
    assert res.returncode == 1
    text = res.stdout + res.stderr
    for name, secret in s.items():
        assert secret not in text, name
    for key in ("upstream.url", "store.url", "kek", "api_token", "mystery", "audit.webhook",
                "plugins.0.with.webhook"):  # fmt: skip
        assert key in text, key
    # The values stay recognisable without their credentials.
    assert "http://***@app.internal:9/x?q=1" in text and "mysql://***@db/gw" in text
    assert "<redacted>" in text and "{password: ...}" in text
