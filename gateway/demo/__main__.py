"""`python -m gateway.demo`: the demo notes app on :9000 and the gateway on :8080 in front of it,
on the embedded store, using ./gateway.yaml. Ctrl-C stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def main() -> int:
    root = Path.cwd()
    config = os.environ.get("GATEWAY_CONFIG", str(root / "gateway.yaml"))
    (root / "var").mkdir(exist_ok=True)
    app = subprocess.Popen(
        [sys.executable, "-m", "gateway.demo.notes", "9000", str(root / "var" / "demo-notes.json")]
    )
    setup = root / "gateway" / "demo" / "setup_user.py"
    if setup.exists():
        subprocess.run([sys.executable, str(setup), config], check=False)
    print(
        "\n  Portcullis demo: open http://127.0.0.1:8080/  (the notes app is on :9000)\n",
        flush=True,
    )
    gw = subprocess.Popen([sys.executable, "-m", "gateway.cli", "-c", config, "run", "--dev"])
    try:
        return gw.wait()
    except KeyboardInterrupt:
        gw.send_signal(signal.SIGTERM)
        return gw.wait()
    finally:
        app.terminate()
        app.wait()


if __name__ == "__main__":
    sys.exit(main())
