"""Creates the demo user (once) through the real CLI: `gateway users add demo --role admin`."""

from __future__ import annotations

import subprocess
import sys

USER, PASSWORD = "demo", "portcullis-demo-password"


def _cli(config: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", "-c", config, *args]


def ensure_user(config: str) -> None:
    listed = subprocess.run(
        _cli(config, "users", "list"), capture_output=True, text=True, check=False
    )
    if USER in listed.stdout.split():
        return
    subprocess.run(
        _cli(
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
        ),
        input=PASSWORD + "\n",
        text=True,
        check=True,
    )


def main() -> None:
    ensure_user(sys.argv[1])
    print(f"\n  Log in as {USER!r} with password {PASSWORD!r} (a demo account).")


if __name__ == "__main__":
    main()
