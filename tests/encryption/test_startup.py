"""Start-up fails closed without key material: exit 2, the message names the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from gateway.crypto.keyring import generate_kek
from tests.encryption.conftest import POLICY
from tests.proxy.conftest import free_port


def _conf(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "00.yaml").write_text(POLICY)
    conf = tmp_path / "gw.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{free_port()}",
                "upstream": {"url": "http://127.0.0.1:9"},
                "metrics": {"listen": None},
                "store": {"url": f"sqlite:///{tmp_path}/gw.db"},
                "keys": {"active": "k1", "kek": {"k1": "env:PORTCULLIS_TEST_KEK_MISSING"}},
            }
        )
    )
    return conf


def test_missing_kek_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PORTCULLIS_TEST_KEK_MISSING"}
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "-c", str(_conf(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert "PORTCULLIS_TEST_KEK_MISSING" in proc.stderr + proc.stdout


def test_malformed_kek_exits_2_without_echo(tmp_path: Path) -> None:
    bad = generate_kek()[:-8]
    env = dict(os.environ, PORTCULLIS_TEST_KEK_MISSING=bad)
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "-c", str(_conf(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert bad not in proc.stderr + proc.stdout
