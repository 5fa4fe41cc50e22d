"""MFA benchmark: what one second-factor check costs, in this process, on a SQLite store.

    python bench/mfa.py [--seconds 3]

1. TOTP: accepted verifications/s through `MfaService.verify_totp` (open the sealed secret:
   HKDF + AES-GCM; pyotp for skew 1 = three codes; the replay step's compare-and-set), the
   clock moved one step per call so every code is fresh.
2. A wrong TOTP code (no store write).
3. Backup codes with the config's default Argon2id (time_cost 2, memory_cost 19456 KiB): a
   wrong code (one Argon2 verify), a right one (verify + delete), and making 10 new codes
   (10 hashes on the Argon2 pool, as `POST /.gateway/mfa/backup-codes` does).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.auth import totp  # noqa: E402
from gateway.auth.mfa import MfaService  # noqa: E402
from gateway.auth.totp import TotpSettings  # noqa: E402
from gateway.auth.users import Hasher, Users  # noqa: E402
from gateway.clock import FixedClock  # noqa: E402
from gateway.config import Argon2Params  # noqa: E402
from gateway.crypto.keyring import Keyring  # noqa: E402
from gateway.store import open_store  # noqa: E402


async def rate(seconds: float, fn) -> tuple[float, int]:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        await fn()
        n += 1
    return n / (time.perf_counter() - start), n


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        clock = FixedClock()
        store = await open_store(f"sqlite:///{folder}/bench.db", base_dir=Path(folder), clock=clock)
        users = Users(store, Hasher(Argon2Params()), clock)
        settings = TotpSettings()
        mfa = MfaService(store, clock, users, settings, Keyring({"k": b"\x01" * 32}, "k"))
        enrollment = await mfa.begin("bench", "bench")
        secret = enrollment.secret
        codes = await mfa.confirm(
            "bench", totp.code_at(secret, totp.step_of(clock.now(), settings), settings)
        )
        assert codes is not None

        async def right() -> None:
            clock.advance(settings.period)
            step = totp.step_of(clock.now(), settings)
            assert await mfa.verify_totp("bench", totp.code_at(secret, step, settings))

        async def wrong() -> None:
            assert not await mfa.verify_totp("bench", "000000")

        per_s, n = await rate(seconds, right)
        print(f"totp right code : {per_s:8.0f}/s  ({1000 / per_s:.3f} ms each, n={n})")
        per_s, n = await rate(seconds, wrong)
        print(f"totp wrong code : {per_s:8.0f}/s  ({1000 / per_s:.3f} ms each, n={n})")

        async def wrong_backup() -> None:
            assert not await mfa.use_backup_code("bench", codes[0][:12] + "ZZ")

        per_s, n = await rate(seconds, wrong_backup)
        print(f"backup wrong    : {per_s:8.1f}/s  ({1000 / per_s:.1f} ms each, n={n})")
        start = time.perf_counter()
        for code in codes:
            assert await mfa.use_backup_code("bench", code)
        each = (time.perf_counter() - start) / len(codes)
        print(f"backup right    : {1 / each:8.1f}/s  ({1000 * each:.1f} ms each, n={len(codes)})")
        start = time.perf_counter()
        await mfa.regenerate_codes("bench")
        print(f"10 new codes    : {1000 * (time.perf_counter() - start):.0f} ms")
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    asyncio.run(main(parser.parse_args().seconds))
