#!/usr/bin/env python3
"""Container entrypoint: validate, check the key material, then become `gateway run`.

1. `gateway check` on $GATEWAY_CONFIG (default /etc/portcullis/gateway.yaml): every config and
   policy error is printed, each naming its key, and the container exits 1.
2. The active KEK must resolve (env:NAME or file:PATH holding base64 of 32 bytes). Without it
   the container exits 2, naming the variable or file and never a value, unless dev mode is
   asked for explicitly with PORTCULLIS_DEV=1: then a local key file is created (0600) under the
   state volume ($PORTCULLIS_STATE, default /var/lib/portcullis) and used, with a loud warning.
3. exec `gateway run -c CONFIG [ARGS...]` (ARGS are the container's command, e.g.
   `--workers 4`), so the gateway is PID 1's replacement: SIGTERM drains and exits 0.

It never prints a key. It only writes the dev key file, and only in dev mode.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

EXIT_INVALID, EXIT_KEYS = 1, 2


def say(message: str) -> None:
    print(f"entrypoint: {message}", file=sys.stderr, flush=True)


def dev_mode() -> bool:
    return os.environ.get("PORTCULLIS_DEV", "").strip().lower() in ("1", "true", "yes")


def check_config(config: Path) -> int:
    from gateway.startup.checks import check_all

    problems = check_all(config, keys=False)  # check_keys answers those, with exit 2
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        say(f"{config}: {len(problems)} error(s); not starting")
        return EXIT_INVALID
    return 0


def check_keys(config_path: Path) -> int:
    from gateway.config import load_config
    from gateway.crypto import KeyMaterialError
    from gateway.crypto.keyring import Keyring, dev_keyfile

    config = load_config(config_path)
    active, refs = config.keys.active, dict(config.keys.kek)
    try:
        Keyring.from_refs(active, refs, environ=os.environ, base_dir=config.base_dir)
        return 0
    except KeyMaterialError as exc:
        problem = str(exc)
    ref = refs[active]
    if not dev_mode() or not ref.startswith("env:") or os.environ.get(ref[4:], "").strip():
        say(f"{problem}; not starting (generate one with `gateway keys generate`)")
        if ref.startswith("env:") and not dev_mode():
            say("for a throwaway local trial only, set PORTCULLIS_DEV=1")
        return EXIT_KEYS
    state = Path(os.environ.get("PORTCULLIS_STATE", "/var/lib/portcullis"))
    try:
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_file = dev_keyfile(state / "dev-kek").removeprefix("file:")
        os.environ[ref[4:]] = Path(key_file).read_text(encoding="ascii").strip()
    except (KeyMaterialError, OSError) as exc:
        say(f"dev key file: {exc}")
        return EXIT_KEYS
    say(
        f"DEV MODE: {ref[4:]} is not set; using the local key file {key_file}. Anyone who can "
        "read that file can decrypt the data. Never run a deployment like this."
    )
    return 0


def main(argv: list[str]) -> int:
    config = Path(os.environ.get("GATEWAY_CONFIG") or "/etc/portcullis/gateway.yaml")
    code = check_config(config) or check_keys(config)
    if code:
        return code
    command = [sys.executable, "-m", "gateway.cli", "-c", str(config), "run", *argv]
    os.execv(sys.executable, command)  # noqa: S606 - the gateway replaces this process
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
