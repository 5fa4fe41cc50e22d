"""`python bench/run.py --quick` as a smoke test: the one benchmark command still starts every
process it needs and every row of its table produces a figure.

Never a timing assertion: CI machines are shared and their figures mean nothing; the figures
are for people (docs/performance.md). wrk and nginx come from Debian's packages (`.ci/run`
installs them): missing, they skip this test on a developer machine and fail it under CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.tools import missing_tool

ROOT = Path(__file__).resolve().parents[2]
WRK = shutil.which("wrk") or "/usr/bin/wrk"
NGINX = "/usr/sbin/nginx"

# Every row the performance issue asks for (bench/run.py names them): a row that vanished
# from the table fails here as surely as one without a figure.
ROWS = {
    "direct", "nginx", "bare", "bare_redis",
    "gw_public_sqlite", "gw_auth_sqlite", "gw_mfa_sqlite",
    "gw_public_redis", "gw_auth_redis", "gw_mfa_redis", "gw_public_2w",
    "gw_upload_plain", "gw_upload_enc", "gw_download_plain", "gw_download_enc",
    "gw_html_plain", "gw_html_tokrule", "gw_html_tokens", "gw_json_enc",
    "logins", "auth_get_logins", "policy_1000",
}  # fmt: skip


def test_every_row_of_the_quick_benchmark_produces_a_figure(tmp_path: Path) -> None:
    if not os.access(WRK, os.X_OK):
        missing_tool(f"wrk not found at {WRK} (Debian package wrk)")
    if not os.access(NGINX, os.X_OK):
        missing_tool(f"nginx not found at {NGINX} (Debian package nginx)")
    if shutil.which("redis-server") is None:
        missing_tool("redis-server not on the PATH (Debian package redis-server)")
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = f"exit {done.returncode}\n{done.stdout[-6000:]}\n{done.stderr[-4000:]}"
    assert out.exists(), report
    rows = {row["key"]: row for row in json.loads(out.read_text())["rows"]}
    assert ROWS <= rows.keys(), f"rows missing: {sorted(ROWS - rows.keys())}\n{report}"
    without = {key: row["failures"] for key, row in rows.items() if not (row["figure"] or 0) > 0}
    assert not without, f"rows without a figure: {without}\n{report}"
    assert done.returncode == 0, report
