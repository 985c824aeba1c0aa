"""Latency figures for the Latency screen: tolerant parsing of `/_sidecar/latency`, sparklines, formats.

No textual import, so the rules (what an empty bucket looks like, how 60 buckets shrink into 10 cells)
are tested as plain functions. The sidecar defines the figures; see `sidecar/latency_stats.py`:
percentiles are nearest-rank over successful requests, tokens/s is the median over successful streams of
`output_tokens / ((latency_ms - ttft_ms) / 1000)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from tui.format import NONE, fmt_ms

WINDOWS = ("15m", "1h", "6h", "24h")
"""What `/_sidecar/latency?window=` accepts, shortest first (keys 1-4)."""
REFRESH_S = {"15m": 5.0, "1h": 5.0, "6h": 15.0, "24h": 30.0}
"""How often a shown window is fetched again: a 30-minute bucket barely moves in 5 s, and a 24h
query over a busy log costs the sidecar ~0.5 s of CPU."""
BLOCKS = "▁▂▃▄▅▆▇█"
GAP = " "
"""A bucket with no data: blank, so "nothing happened" never reads as "fast"."""

Number = float | int | None
How = Literal["max", "mean"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One plottable figure: its key in `buckets`, a label, how buckets combine, how values print."""

    key: str
    label: str
    how: How
    fmt: Callable[[Number], str]


def fmt_rate(tokens_per_s: Number) -> str:
    """Tokens per second in at most 5 cells: 8.5, 87, 1.2k, 12k."""
    if tokens_per_s is None:
        return NONE
    if tokens_per_s < 10:
        return f"{tokens_per_s:.1f}"
    if tokens_per_s < 1000:
        return f"{tokens_per_s:.0f}"
    if tokens_per_s < 10_000:
        return f"{tokens_per_s / 1000:.1f}k"
    return f"{tokens_per_s / 1000:.0f}k"


def fmt_count(n: Number) -> str:
    """Request counts in at most 5 cells: 9999, 12k, 1.2M."""
    if n is None:
        return NONE
    if n < 10_000:
        return str(int(n))
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


def fmt_error_rate(errors: int, requests: int) -> str:
    """`-` for none, `<1%` so a rare error never rounds away, else whole percent."""
    if not errors or not requests:
        return NONE
    share = errors / requests * 100
    return "<1%" if share < 1 else f"{share:.0f}%"


def fmt_ms_value(ms: Number) -> str:
    return fmt_ms(None if ms is None else float(ms))


def fmt_span(seconds: int) -> str:
    """Bucket size for labels: 30s, 1m, 10m, 2h."""
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds / 3600:.1f}h"


METRICS = (
    Metric("latency_ms_p95", "total p95", "max", fmt_ms_value),
    Metric("latency_ms_p50", "total p50", "max", fmt_ms_value),
    Metric("ttft_ms_p95", "TTFT p95", "max", fmt_ms_value),
    Metric("ttft_ms_p50", "TTFT p50", "max", fmt_ms_value),
    Metric("tokens_per_s_p50", "tok/s p50", "max", fmt_rate),
    Metric("requests", "requests", "mean", fmt_count),
    Metric("errors", "errors", "mean", fmt_count),
)
"""In the order `m` cycles the table's trend column; the detail panel shows them all."""


def resample(values: Sequence[Number], width: int, how: How = "max") -> list[Number]:
    """Shrink `values` to `width` cells, each covering a run of consecutive buckets.

    Percentiles can't be merged exactly, so "max" keeps the worst bucket of a run (a spike stays
    visible); counts take the run's "mean", so a steady rate stays flat when runs differ in length
    by one bucket. A run with no data stays None. Never stretches: fewer values than cells come
    back unchanged."""
    n = len(values)
    if width <= 0:
        return []
    if n <= width:
        return list(values)
    out: list[Number] = []
    for cell in range(width):
        run = [v for v in values[cell * n // width:(cell + 1) * n // width] if v is not None]
        if not run:
            out.append(None)
        else:
            out.append(sum(run) / len(run) if how == "mean" else max(run))
    return out


def sparkline(values: Sequence[Number], width: int | None = None, how: How = "max",
              top: float | None = None) -> str:
    """One block character per value, scaled from 0 to `top` (default: the largest value).

    From zero, not from the smallest value: 900 ms vs 1000 ms should look alike, not like a cliff.
    Any positive value gets at least the lowest block; None and zero are blank. `width` resamples."""
    cells = resample(values, width, how) if width is not None else list(values)
    peak = top if top is not None else max((v for v in cells if v is not None), default=0)
    if not peak or peak <= 0:
        return GAP * len(cells)
    out = []
    for v in cells:
        if v is None or v <= 0:
            out.append(GAP)
        else:
            level = min(len(BLOCKS), max(1, round(v / peak * len(BLOCKS))))
            out.append(BLOCKS[level - 1])
    return "".join(out)


def peak(values: Sequence[Number]) -> Number:
    return max((v for v in values if v is not None), default=None)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _int(v: Any) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else 0


@dataclass(frozen=True, slots=True)
class Series:
    """One table row: a provider+model, or all traffic (`provider` and `model` both None, `total`)."""

    provider: str | None
    model: str | None
    requests: int = 0
    errors: int = 0
    ttft_p50: float | None = None
    ttft_p95: float | None = None
    latency_p50: float | None = None
    latency_p95: float | None = None
    tokens_per_s: float | None = None
    streams: int = 0
    buckets: dict[str, list[Number]] = field(default_factory=dict)
    total: bool = False

    @property
    def name(self) -> str:
        if self.total:
            return "all"
        if self.provider is None and self.model is None:
            return "(no provider)"
        return f"{self.provider or '?'}/{self.model or '?'}"

    @property
    def key(self) -> str:
        """Row key: stable across refreshes so the cursor stays on the same model."""
        return "\x00all" if self.total else f"{self.provider}\x00{self.model}"

    def column(self, key: str, n: int) -> list[Number]:
        """A metric's per-bucket values, padded or cut to `n` so a malformed answer can't skew the plot."""
        col = list(self.buckets.get(key, []))[:n]
        return col + [None] * (n - len(col))

    @classmethod
    def parse(cls, d: Any, *, total: bool = False) -> Series:
        if not isinstance(d, dict):
            return cls(None, None, total=total)
        raw = d.get("buckets")
        buckets: dict[str, list[Number]] = {}
        if isinstance(raw, dict):
            for m in METRICS:
                col = raw.get(m.key)
                if isinstance(col, list):
                    buckets[m.key] = [_num(v) for v in col]
        text = lambda k: d.get(k) if isinstance(d.get(k), str) else None  # noqa: E731
        return cls(
            provider=text("provider"), model=text("model"),
            requests=_int(d.get("requests")), errors=_int(d.get("errors")),
            ttft_p50=_num(d.get("ttft_ms_p50")), ttft_p95=_num(d.get("ttft_ms_p95")),
            latency_p50=_num(d.get("latency_ms_p50")), latency_p95=_num(d.get("latency_ms_p95")),
            tokens_per_s=_num(d.get("tokens_per_s_p50")), streams=_int(d.get("streams")),
            buckets=buckets, total=total,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Report:
    """One answer of `/_sidecar/latency`."""

    window: str
    bucket_s: int
    buckets: int
    start: datetime | None
    end: datetime | None
    totals: Series
    series: list[Series]

    @property
    def rows(self) -> list[Series]:
        """The table: all traffic first (when there are several models), then each model."""
        return [self.totals, *self.series] if len(self.series) > 1 else list(self.series)

    @classmethod
    def parse(cls, data: Any, window: str) -> Report:
        d = data if isinstance(data, dict) else {}
        series = d.get("series")
        return cls(
            window=d["window"] if isinstance(d.get("window"), str) else window,
            bucket_s=_int(d.get("bucket_s")),
            buckets=_int(d.get("buckets")),
            start=_when(d.get("start")),
            end=_when(d.get("end")),
            totals=Series.parse(d.get("totals"), total=True),
            series=[Series.parse(s) for s in series if isinstance(s, dict)] if isinstance(series, list) else [],
        )


def _when(v: Any) -> datetime | None:
    if not isinstance(v, str):
        return None
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None


def axis(start: datetime | None, end: datetime | None, width: int) -> str:
    """`11:00 ... 12:00` spanning `width` cells under a sparkline, in local time like the traffic list."""
    if start is None or end is None or width < 12:
        return " " * max(width, 0)
    fmt = "%H:%M" if (end - start).total_seconds() < 86_400 else "%a %H:%M"  # 24h: both ends share a clock time
    left, right = start.astimezone().strftime(fmt), end.astimezone().strftime(fmt)
    return left + " " * max(1, width - len(left) - len(right)) + right
