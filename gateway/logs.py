"""Structured logs: one JSON object per line on stderr, for the app log and the access log.

Callers pass fields through `extra={"fields": {...}}`; only those fields and the message are
written. Never pass a secret (password, code, key, cookie, plaintext) as a field or message.

While a gateway worker serves (`batching()` around the server's loop), lines logged on the event
loop are collected and written together at most FLUSH_DELAY later in one write, instead of one
write per request line: the access log line was ~7% of a proxied request's CPU. A warning or
worse, a full batch, a line from another thread or leaving `batching()` writes at once
(everything before it first, so the order is kept); `logging.shutdown` at exit flushes too.
A writer thread was tried and was slower (GIL hand-offs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator

__all__ = [
    "BatchingHandler",
    "JsonFormatter",
    "access_log",
    "batching",
    "iso_time",
    "log_access",
    "setup_logging",
]

access_log = logging.getLogger("gateway.access")


# One encoder for every line: json.dumps with keyword arguments builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode


_second: tuple[int, str] = (-1, "")  # (second, its text), replaced as one object


def iso_time(epoch: float) -> str:
    """The one time format of every log line, audit events included: ISO 8601 in UTC with
    milliseconds (`2026-12-04T21:03:52.152Z`)."""
    global _second
    second = int(epoch)
    cached, stamp = _second
    if second != cached:  # strftime once a second, not once a line
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, stamp)
    return f"{stamp}.{int((epoch - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def _time(self, created: float, msecs: float) -> str:
        return iso_time(int(created) + msecs / 1000)

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self._time(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: tracebacks can quote local values (request data).
            out["exc"] = record.exc_info[0].__name__
        return _ENCODE(out)


FLUSH_DELAY = 0.005  # seconds a line may wait for others
MAX_BATCH = 512  # lines; a full batch is written at once


class BatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that, while `batch` is on, collects the lines logged on a running event
    loop and writes them in one write from a `call_later(FLUSH_DELAY)` on that loop."""

    def __init__(self, stream: object = None) -> None:
        super().__init__(stream)  # type: ignore[arg-type]
        self.batch = False
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle holds self.lock around emit, and flush takes it: one writer at a time.
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)
            return
        self._lines.append(line)
        if not self.batch or record.levelno >= logging.WARNING or len(self._lines) >= MAX_BATCH:
            self._write_out()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop thread: nobody would flush it later
            self._write_out()
            return
        if self._timer is not None and self._timer_loop is loop:
            return  # a flush is already due on this loop
        self._timer = loop.call_later(FLUSH_DELAY, self.flush)
        self._timer_loop = loop

    def add_line(self, line: str) -> None:
        """A line already formatted, batched like `emit`'s (the caller is on the event loop)."""
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(line)
            if len(self._lines) >= MAX_BATCH:
                self._write_out()
                return
            loop = asyncio.get_running_loop()
            if self._timer is None or self._timer_loop is not loop:
                self._timer = loop.call_later(FLUSH_DELAY, self.flush)
                self._timer_loop = loop

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._timer = None
            self._write_out()

    def _write_out(self) -> None:
        if not self._lines:
            return
        text = "\n".join(self._lines) + self.terminator
        self._lines.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # noqa: BLE001 - as StreamHandler: report, never raise
            self.handleError(logging.makeLogRecord({"msg": "log write failed"}))


_ACCESS = access_log.name


def log_access(fields: dict[str, object]) -> None:
    """Write one request's access line: the same JSON object `access_log.info("request",
    extra={"fields": fields})` writes, built without a LogRecord when the line goes straight to
    the batching handler (the logging machinery was most of the line's cost, ~17 of ~20 µs).
    Any other set-up (a test's capture handler, a filter, a level) goes through `logging`."""
    root = logging.getLogger()
    handlers = root.handlers
    if (
        len(handlers) == 1
        and type(handlers[0]) is BatchingHandler
        and handlers[0].batch
        and not access_log.handlers
        and not access_log.filters
        and not handlers[0].filters
        and access_log.isEnabledFor(logging.INFO)
        and handlers[0].level <= logging.INFO
    ):
        now = time.time()
        out: dict[str, object] = {
            "time": iso_time(now),
            "level": "info",
            "logger": _ACCESS,
            "msg": "request",
        }
        out.update(fields)
        handlers[0].add_line(_ENCODE(out))
        return
    access_log.info("request", extra={"fields": fields})


@contextlib.contextmanager
def batching() -> Iterator[None]:
    """Batch the root logger's `BatchingHandler` lines while inside; flushed on the way out."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, BatchingHandler)]
    for h in handlers:
        h.batch = True
    try:
        yield
    finally:
        for h in handlers:
            h.batch = False
            h.flush()


def setup_logging(level: str = "INFO") -> None:
    handler = BatchingHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # What JsonFormatter never writes need not be collected for every record: the caller's
    # file and line (a stack walk), thread and process names (logging HOWTO, "Optimization").
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.getLogger("aiohttp.access").disabled = True
