"""Where the process's log lines go: a queue the event loop drops them into, and one thread that writes them.

Writing to a slow terminal, pipe or disk must never stall the loop every proxied request runs on, and the
per-request summary line (one per request, the sidecar's access log) must cost the loop as little as
possible: `request_line` puts a tuple of finished values on the queue, and the writer thread makes the log
record, formats it and writes it. The stock logging path (`Logger.info` → record → filters → handlers) cost
~70,000 instructions a request (`bench/`'s callgrind figures); the tuple costs a small fraction of that.

The writer drains whatever is queued, writes it in one call and flushes once, then naps 20 ms: a burst of lines
costs one wake-up and one write, and a put never has a waiter to wake.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from typing import Any

REQUEST_LOGGER = "sidecar.proxy"
NAP_S = 0.02
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATEFMT = "%H:%M:%S"
_STOP = object()

_writer: LogWriter | None = None
_request_log = logging.getLogger(REQUEST_LOGGER)


class _Handoff(logging.Handler):
    """The root handler in a process with a writer: renders the message now (its arguments may change later)
    and hands the record over; the copy and formatting that the stock QueueHandler does here happen in the
    writer thread."""

    def __init__(self, records: queue.SimpleQueue[Any]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.msg, record.args = record.getMessage(), None
            if record.exc_info:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
                record.exc_info = None  # tracebacks hold frames; the text is what gets written
            self.records.put(record)
        except Exception:
            self.handleError(record)


class LogWriter(threading.Thread):
    """The one consumer of the queue: writes through ``handler``'s formatter and stream."""

    def __init__(self, handler: logging.StreamHandler, records: queue.SimpleQueue[Any]) -> None:  # type: ignore
        super().__init__(name="sidecar-log-writer", daemon=True)
        self.handler = handler
        self.records = records
        self._second = -1
        self._clock = ""

    def run(self) -> None:
        while True:
            try:
                batch = [self.records.get_nowait()]
            except queue.Empty:
                time.sleep(NAP_S)
                batch = [self.records.get()]
            while True:
                try:
                    batch.append(self.records.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            self._write([item for item in batch if item is not _STOP])
            if stop:
                return

    def _write(self, batch: list[Any]) -> None:
        handler = self.handler
        lines = []
        for item in batch:
            if isinstance(item, logging.LogRecord):
                if item.levelno >= handler.level:
                    try:
                        lines.append(handler.format(item))
                    except Exception:
                        handler.handleError(item)
            elif logging.INFO >= handler.level:
                lines.append(self._request_text(item))
        if not lines:
            return
        try:
            handler.acquire()
            try:
                stream = handler.stream
                stream.write("\n".join(lines) + "\n")
                stream.flush()
            finally:
                handler.release()
        except Exception:  # a closed or broken stream: nothing to tell it to but stderr, which may be it
            pass

    def _request_text(self, item: tuple[float, str, tuple[Any, ...]]) -> str:
        """The line `FORMAT` gives for a request record, without building the record: the clock part is made once
        a second."""
        created, msg, args = item
        second = int(created)
        if second != self._second:
            self._second, self._clock = second, time.strftime(DATEFMT, time.localtime(second))
        try:
            text = msg % args
        except (TypeError, ValueError) as exc:
            text = f"{msg!r} {args!r} (unformattable: {exc})"
        return FORMAT % {"asctime": self._clock, "levelname": "INFO", "name": REQUEST_LOGGER, "message": text}

    def stop(self) -> None:
        self.records.put(_STOP)
        self.join(5)


def install(handler: logging.StreamHandler) -> None:  # type: ignore[type-arg]
    """Route the root logger through a writer thread to ``handler`` (a `StreamHandler` or `FileHandler`)."""
    global _writer
    # Fields the format never shows; the logging HOWTO's "Optimization" section lists these switches.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # no caller lookup (a stack walk per log call) for %(pathname)s/%(lineno)d
    handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    if _writer is not None:
        _writer.stop()
    _writer = LogWriter(handler, records)
    _writer.start()
    atexit.register(_writer.stop)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(_Handoff(records))


def uninstall() -> None:
    """Stop the writer (after writing what is queued) and detach it; for tests."""
    global _writer
    writer, _writer = _writer, None
    if writer is None:
        return
    writer.stop()
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _Handoff):
            root.removeHandler(h)


def request_line(msg: str, args: tuple[Any, ...]) -> None:
    """Log the summary of one finished request at INFO on ``sidecar.proxy``. ``args`` must be values that
    never change (str, numbers, None): the line is formatted later, in the writer thread.

    Without a writer (tests, library use) it is an ordinary ``log.info``, so every handler sees it. With one,
    only the writer does: the request line carries no notice for the TUI's event log."""
    writer = _writer
    if writer is None or not _request_log.isEnabledFor(logging.INFO):
        _request_log.info(msg, *args)
        return
    writer.records.put((time.time(), msg, args))


