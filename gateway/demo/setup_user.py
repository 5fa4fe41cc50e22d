"""Creates the demo user (once) through the real CLI: `gateway users add demo --role admin`."""

from __future__ import annotations

import subprocess
import sys

USER, PASSWORD = "demo", "portcullis-demo-password"


def main() -> None:
    config = sys.argv[1]
    listed = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", config, "users", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    if USER not in listed.stdout.split():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "-c",
                config,
                "users",
                "add",
                USER,
                "--email",
                "demo@example.org",
                "--role",
                "admin",
                "--role",
                "staff",
                "--password-stdin",
            ],
            input=PASSWORD + "\n",
            text=True,
            check=True,
        )
    print(f"\n  Log in as {USER!r} with password {PASSWORD!r} (a demo account).")


if __name__ == "__main__":
    main()
