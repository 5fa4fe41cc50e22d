"""Config validation and the CLI as an operator meets them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gateway.config import ConfigError, parse_config
from tests.proxy.conftest import PUBLIC_POLICY, free_port


def with_policy(folder: Path) -> None:
    (folder / "policies").mkdir(exist_ok=True)
    (folder / "policies" / "00.yaml").write_text(PUBLIC_POLICY)


def cli(
    *args: str, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


BAD = {
    "upstream": {"url": "ftp://nowhere", "timeout": "5 parsecs"},
    "max_body": "ten",
    "listen": "nohost",
    "session": {"secure": "sometimes", "idle_timeout": "-3m"},
    "lockout": {"max_failures": 0},
    "trusted_proxies": ["10.0.0.0/33"],
    "mystery": True,
    "keys": {"active": "default", "kek": {"default": "c3VwZXJzZWNyZXRrZXk="}},
    "store": {"url": "redis://user:hunter2@db:6379/0", "extra": 1},
}


def test_every_error_names_key_value_and_expectation_at_once():
    with pytest.raises(ConfigError) as info:
        parse_config(BAD, base_dir=Path("."))
    keys = {p.key for p in info.value.problems}
    assert {
        "upstream.url",
        "upstream.timeout",
        "max_body",
        "listen",
        "session.secure",
        "session.idle_timeout",
        "lockout.max_failures",
        "trusted_proxies",
        "mystery",
        "keys.kek",
        "store.extra",
    } <= keys
    text = str(info.value)
    assert "'5 parsecs'" in text and "unknown key" in text and "duration" in text


def test_config_errors_never_print_secrets():
    with pytest.raises(ConfigError) as info:
        parse_config(BAD, base_dir=Path("."))
    text = str(info.value)
    assert "c3VwZXJzZWNyZXRrZXk=" not in text
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("250ms", 0.25), (45, 45)],
)
def test_durations(text, seconds):
    c = parse_config({"upstream": {"url": "http://a", "timeout": text}}, base_dir=Path("."))
    assert c.upstream.timeout == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10MiB", 10 << 20),
        ("512KiB", 512 << 10),
        ("1GiB", 1 << 30),
        ("100B", 100),
        ("2MB", 2_000_000),
    ],
)
def test_sizes(text, size):
    assert (
        parse_config(
            {"upstream": {"url": "http://a"}, "max_body": text}, base_dir=Path(".")
        ).max_body
        == size
    )


def test_check_exits_1_listing_errors_and_0_when_valid(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(BAD))
    res = cli("check", "-c", str(bad))
    assert res.returncode == 1
    assert "upstream.url" in res.stderr and "mystery" in res.stderr
    assert "hunter2" not in res.stderr + res.stdout
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "00.yaml").write_text(
        "rules:\n  - {name: a, match: {paths: [x]}, access: maybe}\n"
    )
    ok_conf = tmp_path / "withpolicy.yaml"
    ok_conf.write_text("upstream: {url: 'http://127.0.0.1:9'}\n")
    res = cli("check", "-c", str(ok_conf))
    assert res.returncode == 1 and "00.yaml" in res.stderr and "access" in res.stderr
    (tmp_path / "policies" / "00.yaml").unlink()
    with_policy(tmp_path)
    good = tmp_path / "good.yaml"
    good.write_text("upstream: {url: 'http://127.0.0.1:9'}\n")
    assert cli("-c", str(good), "check").returncode == 0
    assert cli("check", env={"GATEWAY_CONFIG": str(good)}).returncode == 0


def test_invalid_yaml_is_reported_with_its_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstream:\n  url: [unclosed\n")
    res = cli("check", "-c", str(bad))
    assert res.returncode == 1 and "line" in res.stderr


def test_run_with_two_workers_serves_sums_metrics_and_drains_on_sigterm(tmp_path):
    port, metrics_port = free_port(), free_port()
    with_policy(tmp_path)
    conf = tmp_path / "gw.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "workers": 2,
                "upstream": {"url": "http://127.0.0.1:9"},
                "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
                "store": {"url": f"sqlite:///{tmp_path}/gw.db"},
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "-c", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/.gateway/healthz", timeout=1
                ) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, proc.stderr.read1().decode()
                time.sleep(0.2)
        children = [p for p in __import__("psutil").Process(proc.pid).children()]
        assert len(children) == 2
        for _ in range(39):  # 40 health checks in all, spread over both workers
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/.gateway/healthz") as r:
                assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as r:
            text = r.read().decode()
        total = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("gateway_requests_total{") and 'rule="gateway"' in line
        )
        assert total == 40
        assert 'gateway_info{version="' in text
        # the public listener never serves metrics: /metrics is proxied (upstream down: 502)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics")
            raise AssertionError("the public listener answered /metrics")
        except urllib.error.HTTPError as exc:
            assert exc.code == 502
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    assert rc == 0


def _wait_healthy(port: int, proc: subprocess.Popen) -> None:
    import urllib.request

    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/.gateway/healthz", timeout=1):
                return
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read1()
            time.sleep(0.2)


def test_two_instances_on_one_host_share_a_config_file_with_their_own_ports(tmp_path):
    import urllib.request

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "00.yaml").write_text(PUBLIC_POLICY)
    conf = tmp_path / "gw.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "listen": "127.0.0.1:1",  # neither instance uses the file's ports
                "upstream": {"url": "http://127.0.0.1:9"},
                "metrics": {"listen": "127.0.0.1:2"},
                "store": {"url": f"sqlite:///{tmp_path}/gw.db"},
            }
        )
    )
    a, a_metrics, b, b_metrics = (free_port() for _ in range(4))
    by_flag = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "-c", str(conf),
         "--listen", f"127.0.0.1:{a}", "--metrics-listen", f"127.0.0.1:{a_metrics}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    by_env = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "-c", str(conf), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={
            **os.environ,
            "GATEWAY_LISTEN": f"127.0.0.1:{b}",
            "GATEWAY_METRICS_LISTEN": f"127.0.0.1:{b_metrics}",
        },
    )
    try:
        for port, proc in ((a, by_flag), (b, by_env)):
            _wait_healthy(port, proc)
        for port in (a_metrics, b_metrics):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                assert "gateway_info" in r.read().decode()
    finally:
        for proc in (by_flag, by_env):
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc in (by_flag, by_env)]
    assert codes == [0, 0]


def test_a_bad_listen_flag_names_the_flag(tmp_path):
    conf = tmp_path / "gw.yaml"
    conf.write_text("upstream: {url: 'http://127.0.0.1:9'}\n")
    done = cli("run", "-c", str(conf), "--listen", "nowhere")
    assert done.returncode == 1
    assert "--listen: expected HOST:PORT, e.g. 127.0.0.1:8080 (got 'nowhere')" in done.stderr
    done = cli("run", "-c", str(conf), env={"GATEWAY_METRICS_LISTEN": "9464"})
    assert done.returncode == 1
    assert "--metrics-listen: expected HOST:PORT" in done.stderr
