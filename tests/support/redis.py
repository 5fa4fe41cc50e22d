"""Real Redis processes for tests: a standalone server, a 3-primary cluster, a sentinel pair.

Owns starting redis-server on free loopback ports in a private directory, waiting until it
answers, and stopping it by pid. Never fakes Redis and never touches a server it did not
start. Synchronous on purpose: these run in fixtures, outside the event loop under test.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import redis

__all__ = ["RedisCluster", "RedisSentinel", "RedisServer", "free_port", "running"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, bus: bool = False) -> int:
    """A loopback port nobody listens on; with `bus`, port + 10000 is free too (cluster bus)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not bus or (port + 10000 < 65536 and _port_free(port + 10000)):
            return port
    raise RuntimeError("no free loopback port")


def _wait(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.02)
    raise RuntimeError(f"{what} not ready after {timeout}s ({last!r})")


class RedisServer:
    """One redis-server process. `stop()` then `start()` restarts it on the same port with the
    same data directory, so AOF-persisted data comes back (outage and recovery tests)."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        appendfsync: str = "always",
        password: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port(bus="--cluster-enabled" in extra_args)
        self.password = password
        self._args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", appendfsync,
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
            *(["--requirepass", password] if password else []),
            *extra_args,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=5)

    def start(self) -> RedisServer:
        if self.running:
            return self
        self.proc = subprocess.Popen(self._args, stdout=subprocess.DEVNULL, cwd=self.dir)

        def answers() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.dir / 'redis.log'}")
            with self.client() as c:
                return bool(c.ping())

        _wait(answers, f"redis-server on port {self.port}")
        return self

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL with `kill`) by pid, and wait until the port is released."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def flushall(self) -> None:
        with self.client() as c:
            c.flushall()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisCluster:
    """Three primaries, no replicas, created with `redis-cli --cluster create`."""

    def __init__(self, directory: Path, *, masters: int = 3, appendfsync: str = "always") -> None:
        self.dir = Path(directory)
        self.nodes = [
            RedisServer(
                self.dir / f"node{i}",
                appendfsync=appendfsync,
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ],  # fmt: skip
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> RedisCluster:
        fresh = not (self.nodes[0].dir / "nodes.conf").exists()
        for node in self.nodes:
            node.start()
        if fresh:
            subprocess.run(
                [REDIS_CLI, "--cluster", "create"]
                + [f"127.0.0.1:{n.port}" for n in self.nodes]
                + ["--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=30,
            )
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 20.0) -> None:
        def ok() -> bool:
            for node in self.nodes:
                with node.client() as c:
                    if c.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                        return False
            return True

        _wait(ok, "redis cluster", timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def flushall(self) -> None:
        for node in self.nodes:
            node.flushall()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisSentinel:
    """One master and one sentinel monitoring it as `service` with quorum 1."""

    def __init__(self, directory: Path, *, service: str = "mymaster") -> None:
        self.dir = Path(directory)
        self.service = service
        self.master = RedisServer(self.dir / "master")
        self.port = free_port()
        self._conf = self.dir / "sentinel.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}"

    def start(self) -> RedisSentinel:
        self.master.start()
        if self.proc is None:
            # Sentinel rewrites its config file, so it gets a fresh one it may own.
            self._conf.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"logfile {self.dir / 'sentinel.log'}\n"
                f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
                f"sentinel down-after-milliseconds {self.service} 10000\n"
            )
            self.proc = subprocess.Popen(
                [REDIS_SERVER, str(self._conf), "--sentinel"], stdout=subprocess.DEVNULL
            )

        def knows_master() -> bool:
            with redis.Redis(port=self.port, socket_timeout=5) as c:
                addr = c.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", self.service)
            return addr is not None and int(addr[1]) == self.master.port

        _wait(knows_master, "redis sentinel")
        return self

    def stop(self) -> None:
        self.master.stop()
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> RedisSentinel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(server: RedisServer | RedisCluster | RedisSentinel) -> Iterator[str]:
    """Start `server`, yield its URL, always stop it."""
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
