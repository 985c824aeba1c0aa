"""What the traffic list shows of the model: sort orders and narrowing a change batch to a filter.

No textual import, so the ordering rules (unknown values last in either direction, ties broken by
arrival) are tested as plain functions.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

from tui.model import Changes
from tui.row import RequestRow

Predicate = Callable[[RequestRow], bool]

SORT_COLUMNS: tuple[str, ...] = ("time", "latency", "ttft", "cost", "tokens", "status", "attempts")
"""`o` cycles through these; each sorts largest first (newest, slowest, dearest, worst status, most
attempts), `v` flips. The route column is text, so the filter (`~p`, `~m`) narrows by it instead."""


def sort_value(row: RequestRow, column: str) -> float | None:
    if column == "time":
        return row.epoch
    if row.pending:
        return None
    if column == "latency":
        return row.latency_ms
    if column == "ttft":
        return row.ttft_ms
    if column == "cost":
        return row.cost_usd
    if column == "status":
        return None if row.status is None else float(row.status)
    if column == "attempts":
        return float(len(row.attempts)) if row.attempts else None
    if column == "tokens":
        return None if not row.has_usage else float((row.input_tokens or 0) + (row.output_tokens or 0))
    raise ValueError(f"unknown sort column {column!r}")


def sort_key(row: RequestRow, column: str, flipped: bool = False) -> tuple[Any, ...]:
    """Key for a *descending* sort (`reverse=True`): largest first, or smallest first when
    `flipped`; rows without a value (pending, unpriced) stay last either way; ties go newest first
    (oldest first when flipped)."""
    sign = -1.0 if flipped else 1.0
    v = sort_value(row, column)
    return (v is not None, sign * (v or 0.0), sign * row.epoch, sign * row.seq)


def narrow(changes: Changes, pred: Predicate, shown: Container[str]) -> Changes:
    """Restrict a drained batch to the rows `pred` accepts, given the ids the table `shown`:
    an updated row that stops matching is removed, one that starts matching is added."""
    if changes.reset:
        return changes
    out = Changes(
        added=[r for r in changes.added if pred(r)],
        removed=[rid for rid in changes.removed if rid in shown],
    )
    for row in changes.updated:
        ok = pred(row)
        if row.id in shown:
            (out.updated.append(row) if ok else out.removed.append(row.id))
        elif ok:
            out.added.append(row)
    return out
