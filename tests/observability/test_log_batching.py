"""The batched log writer: lines logged on the serving loop are written together, in order,
and none is lost: not at a warning, not from another thread, not when batching ends, and not
when a real `gateway run` is stopped with SIGTERM right after its last request."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

import gateway.logs
from gateway.logs import FLUSH_DELAY, MAX_BATCH, BatchingHandler, JsonFormatter, batching
from tests.encryption.conftest import Store, store_upstream  # noqa: F401 - fixture
from tests.observability.conftest import events_in, start_gateway, stop_gateway, write_config


class Pipe:
    """A real OS pipe as the log stream; `lines()` reads what was written so far."""

    def __init__(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        self.reader = os.fdopen(r, "rb")
        self.writer = os.fdopen(w, "w", buffering=1)
        self.writes = 0
        self._buf = b""
        real_write = self.writer.write

        def counted(text: str) -> int:
            self.writes += 1
            return real_write(text)

        self.writer.write = counted  # type: ignore[method-assign]

    def lines(self) -> list[dict]:
        chunk = self.reader.read()
        if chunk:
            self._buf += chunk
        return [json.loads(line) for line in self._buf.decode().splitlines()]

    def close(self) -> None:
        self.writer.close()
        self.reader.close()


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, Pipe]]:
    pipe = Pipe()
    handler = BatchingHandler(pipe.writer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield logging.getLogger("gateway.test"), pipe
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        pipe.close()


def msgs(pipe: Pipe) -> list[str]:
    return [line["msg"] for line in pipe.lines()]


async def test_loop_lines_are_written_together_and_in_order(logged) -> None:
    log, pipe = logged
    with batching():
        for i in range(100):
            log.info("line %d", i, extra={"fields": {"n": i}})
        assert msgs(pipe) == []  # nothing written before the loop gets a turn
        await asyncio.sleep(FLUSH_DELAY * 4)
        lines = pipe.lines()
    assert [line["msg"] for line in lines] == [f"line {i}" for i in range(100)]
    assert [line["n"] for line in lines] == list(range(100))
    assert pipe.writes == 1


async def test_a_warning_writes_everything_before_it_at_once(logged) -> None:
    log, pipe = logged
    with batching():
        log.info("first")
        log.info("second")
        log.warning("trouble")
        assert msgs(pipe) == ["first", "second", "trouble"]  # without yielding to the loop
        log.info("after")
        assert msgs(pipe) == ["first", "second", "trouble"]
        await asyncio.sleep(FLUSH_DELAY * 4)
        assert msgs(pipe) == ["first", "second", "trouble", "after"]


async def test_a_full_batch_is_written_without_waiting(logged) -> None:
    log, pipe = logged
    with batching():
        for i in range(MAX_BATCH):
            log.info("x%d", i)
        assert len(msgs(pipe)) == MAX_BATCH


async def test_a_line_from_another_thread_is_written_at_once_after_the_pending_ones(
    logged,
) -> None:
    log, pipe = logged
    with batching():
        log.info("on the loop")
        thread = threading.Thread(target=log.info, args=("from a thread",))
        thread.start()
        thread.join()
        assert msgs(pipe) == ["on the loop", "from a thread"]


def test_leaving_batching_writes_lines_whose_loop_never_ran_the_flush(logged, monkeypatch) -> None:
    log, pipe = logged
    monkeypatch.setattr(gateway.logs, "FLUSH_DELAY", 60.0)  # the timer cannot fire in time

    async def burst() -> None:
        for i in range(10):
            log.info("burst %d", i)

    with batching():
        asyncio.run(burst())  # the loop closes before its flush timer is due
        assert msgs(pipe) == []
    assert msgs(pipe) == [f"burst {i}" for i in range(10)]


def test_without_batching_every_line_is_written_at_once(logged) -> None:
    log, pipe = logged

    async def one() -> None:
        log.info("now")
        assert msgs(pipe) == ["now"]

    asyncio.run(one())


async def test_sigterm_right_after_the_last_request_loses_no_access_line(
    tmp_path: Path,
    store_upstream: Store,  # noqa: F811
) -> None:
    running = start_gateway(write_config(tmp_path, store_upstream.url))
    ids = [f"batch-test-{i:03d}" for i in range(60)]
    try:
        async with aiohttp.ClientSession() as client:

            async def get(rid: str) -> None:
                url = running.url + "/page/" + rid
                async with client.get(url, headers={"X-Request-ID": rid}) as resp:
                    assert resp.status == 200
                    await resp.read()

            await asyncio.gather(*(get(rid) for rid in ids))
    finally:
        stop_gateway(running)  # SIGTERM at once: some lines are still in the batch
    assert running.proc.returncode == 0
    events = events_in(running.log_text())
    logged_ids = [e.get("request_id") for e in events if e.get("logger") == "gateway.access"]
    assert sorted(i for i in logged_ids if i in ids) == ids
    assert events[-1]["msg"] == "stopped"  # and the shutdown lines after them


def test_the_time_field_follows_each_records_own_second_and_milliseconds() -> None:
    fmt = JsonFormatter()
    stamps = []
    for created, msecs in ((1700000000.999, 999), (1700000001.0, 0), (1700000000.5, 500)):
        record = logging.makeLogRecord({"msg": "m", "name": "gateway.test"})
        record.created, record.msecs = created, msecs
        stamps.append(json.loads(fmt.format(record))["time"])
    for created, msecs in ((1700000061.042, 42), (0.25, 250)):
        record = logging.makeLogRecord({"msg": "m", "name": "gateway.test"})
        record.created, record.msecs = created, msecs
        stamps.append(json.loads(fmt.format(record))["time"])
    assert stamps == [
        "2023-11-14T22:13:20.999Z",
        "2023-11-14T22:13:21.000Z",
        "2023-11-14T22:13:20.500Z",  # an older record after a newer one
        "2023-11-14T22:14:21.042Z",
        "1970-01-01T00:00:00.250Z",
    ]


ACCESS_FIELDS = {"method": "GET", "path": "/x", "rule": "r", "status": 200, "user": None}


async def test_the_access_line_is_the_same_line_the_logging_path_writes(logged) -> None:
    _, pipe = logged
    with batching():
        gateway.logs.log_access(dict(ACCESS_FIELDS))  # the fast path
        await asyncio.sleep(FLUSH_DELAY * 4)
    gateway.logs.log_access(dict(ACCESS_FIELDS))  # not batching: through `logging`
    fast, slow = pipe.lines()
    assert list(fast) == list(slow) == ["time", "level", "logger", "msg", *ACCESS_FIELDS]
    assert {k: v for k, v in fast.items() if k != "time"} == {
        k: v for k, v in slow.items() if k != "time"
    }
    assert fast["logger"] == "gateway.access" and fast["msg"] == "request"
    for line in (fast, slow):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


async def test_an_added_handler_still_sees_the_access_line(logged) -> None:
    _, pipe = logged
    seen: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    extra = Capture()
    logging.getLogger().addHandler(extra)
    try:
        with batching():
            gateway.logs.log_access(dict(ACCESS_FIELDS))
            await asyncio.sleep(FLUSH_DELAY * 4)
    finally:
        logging.getLogger().removeHandler(extra)
    assert [r.getMessage() for r in seen] == ["request"]
    assert [line["msg"] for line in pipe.lines()] == ["request"]
