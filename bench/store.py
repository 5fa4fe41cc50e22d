"""Store benchmark: operations/s and p50/p99 latency of the hot operations.

    python bench/store.py [--ops 20000] [--concurrency 64] [--no-cluster] [--appendfsync always]

Starts its own redis-server (and a 3-primary cluster) on free loopback ports in a temporary
directory, and a SQLite file there too. Measures `get` (a session read) and `incr` (a failure
counter) from concurrent asyncio tasks in one process. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.store import Store, open_store  # noqa: E402
from tests.support.redis import RedisCluster, RedisServer  # noqa: E402


async def measure(store: Store, op: str, total: int, tasks: int) -> tuple[float, float, float]:
    await store.put("session", "hot", b"x" * 200)
    latencies: list[float] = []
    per_task = total // tasks

    async def worker(n: int) -> None:
        for i in range(per_task):
            start = time.perf_counter()
            if op == "get":
                await store.get("session", "hot")
            else:
                await store.incr("lock", f"fail:user{(n * per_task + i) % 1000}", 900)
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(tasks)))
    elapsed = time.perf_counter() - began
    q = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, q[49] * 1000, q[98] * 1000


async def run(urls: dict[str, str], base: Path, total: int, concurrency: int) -> None:
    print(f"{'backend':<14}{'op':<6}{'ops/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, url in urls.items():
        store = await open_store(url, base_dir=base)
        try:
            await measure(store, "get", min(total, 2000), concurrency)  # warm up
            for op in ("get", "incr"):
                rate, p50, p99 = await measure(store, op, total, concurrency)
                print(f"{name:<14}{op:<6}{rate:>10.0f}{p50:>10.2f}{p99:>10.2f}", flush=True)
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-cluster", action="store_true")
    parser.add_argument("--appendfsync", default="always", choices=["always", "everysec", "no"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        base = Path(tmp)
        server = stack.enter_context(RedisServer(base / "redis", appendfsync=args.appendfsync))
        urls = {"sqlite": "sqlite:///gateway.db", "redis": server.url}
        if not args.no_cluster:
            cluster = RedisCluster(base / "cluster", appendfsync=args.appendfsync)
            stack.enter_context(cluster)
            urls["redis-cluster"] = cluster.url
        print(
            f"{args.ops} ops per row, {args.concurrency} concurrent tasks, "
            f"redis appendfsync {args.appendfsync}, sqlite synchronous=FULL (WAL)"
        )
        asyncio.run(run(urls, base, args.ops, args.concurrency))


if __name__ == "__main__":
    main()
