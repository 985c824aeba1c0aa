"""``sidecar spend``: totals by day, provider, model or client, read straight from the SQLite request log.

Why straight from the file: spend is what you check after the fact, when no sidecar may be running; WAL lets
this read while one is. A group whose only usage has no known price shows ``unknown``, never $0; a group that
mixes both shows the priced sum and how many requests it leaves out.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import sys
from pathlib import Path
from typing import Any

import orjson

from sidecar.pricing import CATALOG_VERSION
from sidecar.store import SPEND_KEYS, RequestStore

BY = tuple(SPEND_KEYS)
FORMATS = ("table", "csv", "json")
_COLS = ("requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
         "reasoning_tokens", "cost_usd", "unpriced_requests", "estimated_requests")


def run_spend(db_path: Path, *, days: int, by: str, fmt: str, prices: str = CATALOG_VERSION) -> int:
    """``prices`` names the catalog now in use; each record's own ``cost_breakdown.source`` says what priced it."""
    if days < 1:
        print("--days must be 1 or more", file=sys.stderr)
        return 2
    if not db_path.exists():
        print(f"no request log at {db_path} yet: nothing has been recorded", file=sys.stderr)
        return 1
    try:
        rows = RequestStore(db_path).spend_totals(days, by)
    except sqlite3.Error as exc:
        print(f"cannot read the request log {db_path}: {exc}", file=sys.stderr)
        return 1
    if fmt == "json":
        sys.stdout.write(orjson.dumps({"days": days, "by": by, "prices": prices, "rows": rows},
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow((by, *_COLS))
        for row in rows:  # an unknown cost is an empty cell, never 0
            writer.writerow((_key(row[by]), *("" if row[c] is None else row[c] for c in _COLS)))
        sys.stdout.write(out.getvalue())
    else:
        sys.stdout.write(_table(rows, by, days, prices))
    return 0


def _key(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _money(row: dict[str, Any]) -> str:
    if row["cost_usd"] is None:
        return "unknown"
    text = f"${row['cost_usd']:.4f}"
    return text + (f" + {row['unpriced_requests']} unpriced" if row["unpriced_requests"] else "")


def _table(rows: list[dict[str, Any]], by: str, days: int, prices: str) -> str:
    head = (by, "requests", "errors", "input", "output", "cached", "reasoning", "cost")
    body = [(_key(r[by]), str(r["requests"]), str(r["errors"]), str(r["input_tokens"]), str(r["output_tokens"]),
             str(r["cache_read_tokens"]), str(r["reasoning_tokens"]), _money(r)) for r in rows]
    priced = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
    unpriced = sum(r["unpriced_requests"] for r in rows)
    total = {"cost_usd": sum(priced) if priced or not unpriced else None, "unpriced_requests": unpriced}
    body.append(("total", str(sum(r["requests"] for r in rows)), str(sum(r["errors"] for r in rows)),
                 *(str(sum(r[k] for r in rows)) for k in ("input_tokens", "output_tokens", "cache_read_tokens",
                                                           "reasoning_tokens")), _money(total)))
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    fmt_line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                       for i, (c, w) in enumerate(zip(cells, widths))).rstrip() + "\n"
    estimated = sum(r["estimated_requests"] for r in rows)
    notes = f"last {days} day(s), UTC; prices: {prices} plus [prices] overrides"
    if estimated:
        notes += f"; {estimated} request(s) with estimated usage"
    return "".join([fmt_line(head), *(fmt_line(line) for line in body), notes + "\n"])
