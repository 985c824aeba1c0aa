"""Small helpers with no better home: request ids, timestamps, task references."""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import time
from collections.abc import Coroutine
from typing import Any

_tasks: set[asyncio.Task[Any]] = set()


_last_id_us = 0
_id_suffix = secrets.token_hex(4)
"""Random per process, not per id: ids are already unique within the process (strictly increasing microseconds),
and the suffix keeps two processes writing one database (`sidecar up` and a demo, say) apart without a
``getrandom`` call per request."""


def _new_suffix() -> None:
    global _id_suffix
    _id_suffix = secrets.token_hex(4)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_suffix)  # a forked child must not share its parent's suffix


def new_request_id() -> str:
    """Time-ordered and unique: ids sort like arrival times, which keyset pagination relies on.

    Microseconds, made strictly increasing within the process: a fast proxy answers several requests in one
    millisecond, and random bits there would order them at random."""
    global _last_id_us
    now = max(time.time_ns() // 1_000, _last_id_us + 1)
    _last_id_us = now
    return f"{now:013x}{_id_suffix}"


_iso_second = -1
_iso_prefix = ""


def utc_now_iso() -> str:
    """Now as ``2026-12-02T07:53:41.123Z``; the part up to the second is formatted once a second."""
    global _iso_second, _iso_prefix
    now = time.time()
    second = int(now)
    if second != _iso_second:
        _iso_second, _iso_prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_iso_prefix}.{int((now - second) * 1000):03d}Z"


def spawn(coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
    """Start a task and keep a reference to it: an unreferenced task can be garbage-collected mid-run."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile, the one definition the store's stats and the Latency view share: the value
    at rank ceil(n·p/100), always one that was actually observed. Sorts `values` in place (cheap if sorted)."""
    if not values:
        return None
    values.sort()
    return values[max(1, math.ceil(len(values) * p / 100)) - 1]
