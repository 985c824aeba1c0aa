"""Which event loop the long-running commands (`serve`, `up`, `demo`) run on: uvloop where it exists.

The proxy spends most of its time moving bytes between sockets and waking tasks; uvloop does that part in C
(libuv), which cuts the sidecar's CPU per proxied request and per streamed chunk (bench/run.py shows the
figures with and without). It does not exist on Windows, and a broken or missing install must never stop the
proxy, so the standard loop is the fallback. ``SIDECAR_NO_UVLOOP=1`` opts out, e.g. to rule it out when
chasing a bug or to compare.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

OPT_OUT = "SIDECAR_NO_UVLOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None for asyncio's default (Windows, opted out, not installed)."""
    if sys.platform == "win32" or os.environ.get(OPT_OUT, "").strip() not in ("", "0"):
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_name() -> str:
    """``"uvloop"`` or ``"asyncio"``: what `run` would use, for the start-up banner and the benchmarks."""
    return "uvloop" if loop_factory() is not None else "asyncio"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on the best loop available. ``asyncio.Runner`` rather than ``uvloop.install()``, so
    nothing global changes: code that later calls ``asyncio.run`` itself (tests, tools) gets the default."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
