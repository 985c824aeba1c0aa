"""The sidecar's own notable messages as live ``notice`` events: what the TUI's event log and toasts show.

Why a logging handler: the places that notice trouble (a provider failing, a missing key, a breaker opening, a
pause) already log it, and logging reaches every module without threading the event bus through them.
`NoticeHandler` sits on the ``sidecar`` logger and turns WARNING+ records, and INFO records marked with
``extra={"notice": kind}``, into events on the bus::

    event: notice
    data: {"id": "3f9a1c-7", "ts": "2026-01-31T10:00:00.123Z", "level": "warning", "source": "proxy",
           "kind": "failover", "message": "...", "count": 1, "provider": "backup"}

``kind`` is what a reader may act on (the TUI toasts ``failover``, ``budget`` and ``missing_key``):
``failover | missing_key | keyring | upstream_error | breaker | budget | paused | resumed | suppressed | log``.
A log call marks its record with ``extra={"notice": "<kind>", "provider": "<id>"}``; unmarked warnings are
``log``.

- **Never waits.** `NoticeBook.add` is a few dict and deque operations and a synchronous `EventBus.publish`.
  Records logged on another thread (the store's writer, ``asyncio.to_thread`` work) are handed to the event
  loop with ``call_soon_threadsafe``; the bus is not thread-safe and the proxy must not take a lock for this.
- **Storms coalesce.** Records with the same level, source, kind, provider and message template (the format
  string before its arguments, so "request A blocked" and "request B blocked" are one) within `WINDOW` seconds
  are one notice whose ``count`` grows; the grown notice is published again, same ``id``, when its window
  closes. Beyond `MAX_PER_SECOND` new notices in a second the rest are only counted, and one ``suppressed``
  notice says how many (the log file still has them all).
- **No keys.** Each message is scrubbed of every provider key the proxy holds in memory, and of anything
  shaped like a common API key or a client token, before it is kept or published.
- **Catch-up.** The last `CAPACITY` notices stay in memory; ``GET /_sidecar/notices?limit=N`` serves them newest
  first, so a TUI that (re)connects sees what happened while it was away.

Budget thresholds (80 % and 100 % of each configured cap, once per cap per period) are watched here too, from
``request_finished`` events (`BudgetWatch`): budgets.py keeps the spend; deciding what is worth telling the user
belongs with the other notices.

One process normally runs one sidecar. When a process runs several (the test suite), each one's handler sees
every ``sidecar`` log record, so their notice logs are shared.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from time import monotonic
from typing import Any

import orjson
from aiohttp import web

from sidecar.events import Event, EventBus
from sidecar.redact import REDACTED
from sidecar.state import SidecarState
from sidecar.util import utc_now_iso

log = logging.getLogger("sidecar.notices")
budget_log = logging.getLogger("sidecar.budgets")

CAPACITY = 500
"""Notices kept for ``GET /_sidecar/notices``."""
WINDOW = 1.0
"""Seconds during which identical notices merge into one with a count."""
MAX_PER_SECOND = 20
"""New (not merged) notices published per second; the rest are counted in one ``suppressed`` notice."""
MAX_MESSAGE = 1000
"""Characters kept of a message: an upstream error body can be long."""
THRESHOLDS = (1.0, 0.8)
"""Budget fractions that produce a notice, highest first."""

_KEY_SHAPES = re.compile(
    r"(?:sk-(?:ant-|proj-)?|sct_|AIza|gsk_|xai-|pplx-|hf_)[A-Za-z0-9_\-]{12,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{12,}"
)
"""OpenAI/Anthropic ``sk-``, Gemini ``AIza``, Groq, xAI, Perplexity, Hugging Face keys, our ``sct_`` tokens and
bearer credentials: a second net under the exact-key scrub, for a key the proxy no longer holds in memory."""
_REDACTED = REDACTED.decode()


def scrub_message(text: str, keys: Iterable[str] = ()) -> str:
    """``text`` without any of ``keys`` and without anything shaped like a key or token."""
    for key in keys:
        if key and key in text:
            text = text.replace(key, _REDACTED)
    return _KEY_SHAPES.sub(_REDACTED, text)


@dataclass(slots=True)
class _Open:
    """A notice still accepting merges until ``until`` (monotonic)."""

    notice: dict[str, Any]
    until: float
    dirty: bool = False


class NoticeBook:
    """The notice history and the coalescing in front of the bus. Call only on the event loop's thread.

    Args:
        bus: Where ``notice`` events go.
        keys: Returns the keys to scrub from messages (the proxy's `KeyCache.known_secrets`).
        clock: Monotonic seconds; tests pass a fake one and call `flush` themselves.
    """

    def __init__(self, bus: EventBus, *, keys: Callable[[], Iterable[str]] = tuple, capacity: int = CAPACITY,
                 window: float = WINDOW, max_per_second: int = MAX_PER_SECOND,
                 clock: Callable[[], float] = monotonic) -> None:
        self.bus = bus
        self._keys = keys
        self._history: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._open: dict[tuple[Any, ...], _Open] = {}
        self._window = window
        self._max = max_per_second
        self._clock = clock
        self._prefix = secrets.token_hex(3)
        """Ids are unique across sidecar restarts, so a TUI that keeps old notices never confuses two."""
        self._seq = itertools.count(1)
        self._second = float("-inf")
        self._in_second = 0
        self._suppressed = 0
        self._timer: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """Set while the app runs; without it nothing is scheduled and `flush` is called by hand."""

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first; copies, so a caller serialising them later sees a consistent snapshot."""
        items = list(self._history)[::-1]
        return [dict(n) for n in (items if limit is None else items[:limit])]

    def add(self, level: str, source: str, message: str, *, kind: str = "log", provider: str | None = None,
            template: str | None = None, ts: str | None = None) -> dict[str, Any] | None:
        """Record one notice (or merge it into an open identical one); returns it, or None if suppressed."""
        ts = ts or utc_now_iso()
        now = self._clock()
        key = (level, source, kind, provider, template if template is not None else message)
        current = self._open.get(key)
        if current is not None and now < current.until:
            current.notice["count"] += 1
            current.notice["last_ts"] = ts
            current.dirty = True
            self._schedule()
            return current.notice
        if now - self._second >= 1.0:
            self._second, self._in_second = now, 0
        if self._in_second >= self._max and kind != "suppressed":
            self._suppressed += 1
            self._schedule()
            return None
        self._in_second += 1
        notice: dict[str, Any] = {
            "id": f"{self._prefix}-{next(self._seq)}", "ts": ts, "level": level, "source": source, "kind": kind,
            "message": scrub_message(message, self._keys())[:MAX_MESSAGE], "count": 1,
        }
        if provider:
            notice["provider"] = provider
        self._history.append(notice)
        self._open[key] = _Open(notice, now + self._window)
        self.bus.publish("notice", dict(notice))  # a copy: merges mutate ours, subscribers may not have sent it yet
        self._schedule()
        return notice

    def flush(self) -> None:
        """Close the windows that have ended: republish grown notices, report suppressed ones."""
        self._timer = None
        now = self._clock()
        for key, current in list(self._open.items()):
            if now >= current.until:
                del self._open[key]
                if current.dirty:
                    self.bus.publish("notice", dict(current.notice))
        if self._suppressed and now - self._second >= 1.0:
            n, self._suppressed = self._suppressed, 0
            self.add("warning", "notices", f"{n} more notices in a burst were not shown; the sidecar's log "
                     "file has them all", kind="suppressed", template="suppressed")
        if self._open or self._suppressed:
            self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        if self._timer is None and self.loop is not None and not self.loop.is_closed():
            self._timer = self.loop.call_later(self._window, self.flush)


class NoticeHandler(logging.Handler):
    """Turns ``sidecar.*`` log records into notices; see the module docstring for which records."""

    def __init__(self, book: NoticeBook, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.INFO)
        self.book = book
        self.loop = loop
        self._busy = threading.local()
        """Set while a record is being turned into a notice on this thread: a record logged by the bus or a
        listener during that (say a failing listener) is dropped, never looped back into the bus."""

    def emit(self, record: logging.LogRecord) -> None:
        kind = getattr(record, "notice", None)
        if record.levelno < logging.WARNING and not isinstance(kind, str):
            return
        if getattr(self._busy, "on", False) or record.name == log.name:
            return
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[0] is not None:
                text += f" ({record.exc_info[0].__name__})"  # the type only: a traceback can quote anything
            provider = getattr(record, "provider", None)
            args = (record.levelname.lower(), record.name.removeprefix("sidecar.") or "sidecar", text)
            kw = {"kind": kind if isinstance(kind, str) else "log",
                  "provider": provider if isinstance(provider, str) else None,
                  "template": str(record.msg), "ts": _iso(record.created)}
        except Exception:
            self.handleError(record)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._deliver(args, kw)
        elif not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._deliver, args, kw)
            except RuntimeError:  # the loop closed in between: the notice goes with it
                pass

    def _deliver(self, args: tuple[str, str, str], kw: dict[str, Any]) -> None:
        self._busy.on = True
        try:
            self.book.add(*args, **kw)
        except Exception:  # a notice must never fail the code that logged it
            pass
        finally:
            self._busy.on = False


class BudgetWatch:
    """Logs a budget notice when a cap's spend crosses 80 % and 100 %, once per cap, period and threshold.

    Listens for ``request_finished`` with a cost, after `BudgetBook.finished` counted it, and checks on the
    next loop turn: a burst of finished requests costs one check, and the notice is not published from inside
    the bus's own `publish`."""

    def __init__(self, state: SidecarState) -> None:
        self.state = state
        self._told: set[tuple[str, str, str, float]] = set()
        self._pending = False

    def on_event(self, event: Event) -> None:
        if event.type != "request_finished" or not event.data.get("cost_usd") or self._pending:
            return
        if not self.state.config.budgets.any:
            return
        self._pending = True
        asyncio.get_running_loop().call_soon(self.check)

    def check(self) -> None:
        from sidecar.budgets import budget_status

        self._pending = False
        book = getattr(self.state.proxy, "budgets", None)
        if book is None:
            return
        status = budget_status(self.state.config.budgets, book)
        for b in status["budgets"]:
            limit, spent = b["limit_usd"], b["spent_usd"]
            used = spent / limit if limit > 0 else (1.0 if spent > 0 else 0.0)
            for threshold in THRESHOLDS:
                key = (b["scope"], b["period"], b["resets"], threshold)
                if used < threshold or key in self._told:
                    continue
                self._told.update((b["scope"], b["period"], b["resets"], t) for t in THRESHOLDS if t <= threshold)
                self._tell(b, threshold, status["mode"])
                break

    @staticmethod
    def _tell(b: dict[str, Any], threshold: float, mode: str) -> None:
        scope, period = b["scope"], b["period"]
        provider = scope.removeprefix("provider ") if scope.startswith("provider ") else None
        extra = {"notice": "budget", "provider": provider}
        figures = f"${b['spent_usd']:.2f} of ${b['limit_usd']:.2f}; resets {b['resets']}"
        if threshold >= 1.0:
            then = ("requests under it are refused until it resets" if mode == "block"
                    else "warn mode: requests still go through")
            budget_log.error("%s budget for %s used up (%s): %s", period, scope, figures, then, extra=extra)
        else:
            budget_log.warning("%s budget for %s is %d%% used (%s)", period, scope, round(threshold * 100),
                               figures, extra=extra)


NOTICES = web.AppKey("sidecar_notices", NoticeBook)
routes = web.RouteTableDef()


@routes.get("/_sidecar/notices")
async def notices_endpoint(request: web.Request) -> web.Response:
    """``{"notices": [...]}``, newest first, at most ``?limit=N`` (default and cap: `CAPACITY`)."""
    try:
        limit = min(max(int(request.query.get("limit", CAPACITY)), 1), CAPACITY)
    except ValueError:
        body = {"error": {"message": "limit must be an integer", "type": "invalid_request_error"}}
        return web.Response(status=400, body=orjson.dumps(body), content_type="application/json")
    notices = request.app[NOTICES].recent(limit)
    return web.Response(body=orjson.dumps({"notices": notices, "capacity": CAPACITY}), content_type="application/json")


_attached: list[NoticeHandler] = []
_saved_level: list[int] = []


def install(app: web.Application, state: SidecarState) -> NoticeBook:
    """Serve ``GET /_sidecar/notices`` and, while the app runs, turn ``sidecar`` log records and budget
    crossings into notices."""
    book = NoticeBook(state.bus, keys=lambda: state.keys.known_secrets())
    app[NOTICES] = book
    app.add_routes(routes)
    watch = BudgetWatch(state)

    async def running(_app: web.Application) -> AsyncIterator[None]:
        book.loop = asyncio.get_running_loop()
        handler = NoticeHandler(book, book.loop)
        _attach(handler)
        state.bus.add_listener(watch.on_event)
        try:
            yield
        finally:
            state.bus.remove_listener(watch.on_event)
            _detach(handler)
            book.close()
            book.loop = None

    app.cleanup_ctx.append(running)
    return book


def _attach(handler: NoticeHandler) -> None:
    """Add ``handler`` to the ``sidecar`` logger, which must pass INFO for marked notices (breaker closed,
    resumed) even when nobody configured logging (the tests, a library user); the CLI already logs at INFO."""
    root = logging.getLogger("sidecar")
    if not _attached and not root.isEnabledFor(logging.INFO):
        _saved_level.append(root.level)
        root.setLevel(logging.INFO)
    _attached.append(handler)
    root.addHandler(handler)


def _detach(handler: NoticeHandler) -> None:
    root = logging.getLogger("sidecar")
    root.removeHandler(handler)
    if handler in _attached:
        _attached.remove(handler)
    if not _attached and _saved_level:
        root.setLevel(_saved_level.pop())


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
