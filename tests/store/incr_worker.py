"""A second OS process for the cross-process counter test.

Usage: python -m tests.store.incr_worker URL BASE_DIR N. Opens the store, prints "ready",
waits for a line on stdin (so both processes hammer the counter at the same time), then runs
N concurrent increments and prints the values it got as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from gateway.store import open_store


async def main(url: str, base_dir: str, n: int) -> None:
    store = await open_store(url, base_dir=Path(base_dir))
    try:
        await store.ping()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        results = await asyncio.gather(
            *(store.incr("lock", "shared:counter", 600) for _ in range(n))
        )
        print(json.dumps([value for value, _ in results]), flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
