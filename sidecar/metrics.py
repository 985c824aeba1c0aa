"""``GET /metrics``: Prometheus text exposition format (version 0.0.4), rendered by hand.

Counters and histograms are plain dicts updated synchronously by an `EventBus` listener as the proxy publishes
``request_started`` / ``attempt`` / ``request_finished``: no task, no queue, a few dict updates per request.
Gauges that describe the present (breakers, cool-downs) are read from the `HealthBook` at scrape time.

Why not ``prometheus_client`` at runtime: it is built around a process-global default registry (metrics are
module-level singletons, so two apps in one process — the test suite, the demo — share and double-count them),
it pulls in its own HTTP server/multiprocess machinery we do not use, and everything here is a dozen series
whose text format is simple. The test suite uses its parser to check that what we render is valid.

Series (labels ``provider``, ``model``, ``inbound`` where they make sense; provider and model are ``"none"`` when
no upstream target was reached):

- ``sidecar_requests_total{provider,model,inbound,status}`` — client requests by final HTTP status
- ``sidecar_request_errors_total{provider,model}`` — requests answered with status >= 400 or with an error
- ``sidecar_attempts_total{provider,model,outcome}`` — upstream attempts, outcome ``ok`` | ``error``
- ``sidecar_failovers_total`` — attempts beyond the first of their request
- ``sidecar_tokens_total{provider,model,kind}`` — kind ``input|output|cache_read|cache_write|reasoning``
- ``sidecar_cost_usd_total{provider,model}`` — priced requests only; ``sidecar_unpriced_requests_total`` counts
  requests that had usage but no known price (their cost is unknown, never a made-up zero)
- ``sidecar_request_latency_seconds`` / ``sidecar_ttft_seconds`` histograms ``{provider,model}``
- ``sidecar_breaker_state{provider}`` (0 closed, 1 half_open, 2 open), ``sidecar_cooldown_seconds{provider}``
- ``sidecar_in_flight_requests``, ``sidecar_up``, ``sidecar_build_info{version}``
- ``sidecar_budget_limit_usd`` / ``sidecar_budget_spent_usd`` / ``sidecar_budget_remaining_usd`` /
  ``sidecar_budget_resets_timestamp_seconds``, labels ``{scope,name,period}``: one series per configured cap
  (scope ``global|provider|client``, name the provider or client, or ``global``; period ``daily|monthly``), the
  same figures as ``GET /_sidecar/budgets``. Absent when no budget is configured.

Extension point: other parts of the app add scrape-time gauges (e.g. budget remaining) with
``app[METRICS].gauge_providers.append(fn)``, where ``fn()`` returns an iterable of `GaugeFamily`. A provider
that raises is logged and skipped; the rest of the page is still served.

Model names are client-influenced (``provider/anything`` routes), so the number of distinct ``model`` label values
is capped (`MAX_MODEL_LABELS`); later new names are counted under ``model="other"``.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from sidecar import __version__
from sidecar.budgets import budget_status
from sidecar.events import Event, EventBus
from sidecar.state import STATE

log = logging.getLogger("sidecar.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
"""Seconds. LLM calls range from a cached 50 ms answer to minutes-long reasoning streams."""
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
MAX_MODEL_LABELS = 500
NONE = "none"
OTHER = "other"


@dataclass(slots=True)
class GaugeFamily:
    """One gauge metric computed at scrape time, for `Metrics.gauge_providers`."""

    name: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


GaugeProvider = Callable[[], Iterable[GaugeFamily]]


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.series: dict[tuple[str, ...], list[float]] = {}
        """labels → [count per bucket (non-cumulative) ..., count in +Inf only, sum]"""

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        row = self.series.get(labels)
        if row is None:
            row = self.series[labels] = [0] * (len(self.buckets) + 1) + [0.0]
        row[bisect.bisect_left(self.buckets, value)] += 1  # `le` buckets: value <= bound
        row[-1] += value


class Metrics:
    """The collector: event-driven counters plus scrape-time gauges."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str, str], int] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.attempts: dict[tuple[str, str, str], int] = {}
        self.failovers = 0
        self.tokens: dict[tuple[str, str, str], int] = {}
        self.cost: dict[tuple[str, str], float] = {}
        self.unpriced: dict[tuple[str, str], int] = {}
        self.latency = Histogram()
        self.ttft = Histogram()
        self.in_flight: set[str] = set()
        self.gauge_providers: list[GaugeProvider] = []
        """Scrape-time gauges registered by other parts of the app (budgets, ...)."""
        self._models: set[str] = set()

    # ------------------------------------------------------------------------------------------- events

    def on_event(self, event: Event) -> None:
        """The `EventBus` listener: synchronous, a few dict updates."""
        data = event.data
        if event.type == "request_started":
            self.in_flight.add(data["id"])
        elif event.type == "attempt":
            ok = data.get("error") is None and isinstance(data.get("status"), int) and data["status"] < 400
            key = (data.get("provider") or NONE, self._model(data.get("model")), "ok" if ok else "error")
            self.attempts[key] = self.attempts.get(key, 0) + 1
        elif event.type == "request_finished":
            self._finished(data)

    def _finished(self, rec: dict[str, Any]) -> None:
        self.in_flight.discard(rec["id"])
        provider = rec.get("provider") or NONE
        model = self._model(rec.get("model")) if rec.get("provider") else NONE
        pm = (provider, model)
        status = rec.get("status")
        key = (provider, model, rec.get("inbound") or NONE, str(status) if status is not None else NONE)
        self.requests[key] = self.requests.get(key, 0) + 1
        if (isinstance(status, int) and status >= 400) or rec.get("error"):
            self.errors[pm] = self.errors.get(pm, 0) + 1
        self.failovers += max(len(rec.get("attempts") or ()) - 1, 0)
        has_usage = False
        for kind in TOKEN_KINDS:
            n = rec.get(f"{kind}_tokens")
            if isinstance(n, int):
                has_usage = True
                tk = (provider, model, kind)
                self.tokens[tk] = self.tokens.get(tk, 0) + n
        cost = rec.get("cost_usd")
        if isinstance(cost, (int, float)):
            self.cost[pm] = self.cost.get(pm, 0.0) + cost
        elif has_usage:
            self.unpriced[pm] = self.unpriced.get(pm, 0) + 1
        if isinstance(latency := rec.get("latency_ms"), (int, float)):
            self.latency.observe(pm, latency / 1000)
        if isinstance(ttft := rec.get("ttft_ms"), (int, float)):
            self.ttft.observe(pm, ttft / 1000)

    def _model(self, model: str | None) -> str:
        if not model:
            return NONE
        if model in self._models:
            return model
        if len(self._models) >= MAX_MODEL_LABELS:
            return OTHER
        self._models.add(model)
        return model

    # ------------------------------------------------------------------------------------------- rendering

    def render(self, *, health: Any = None, providers: Iterable[str] = ()) -> str:
        """The whole exposition page. ``health`` is the proxy's `HealthBook` (None before the app started)."""
        out: list[str] = []
        counter = _Family(out, "counter")
        counter("sidecar_requests_total", "Client requests by final HTTP status.",
                ("provider", "model", "inbound", "status"), self.requests)
        counter("sidecar_request_errors_total", "Client requests answered with status >= 400 or an error.",
                ("provider", "model"), self.errors)
        counter("sidecar_attempts_total", "Upstream attempts by outcome.",
                ("provider", "model", "outcome"), self.attempts)
        counter("sidecar_failovers_total", "Attempts beyond the first of their request.", (), {(): self.failovers})
        counter("sidecar_tokens_total", "Tokens by kind, as reported by the provider.",
                ("provider", "model", "kind"), self.tokens)
        counter("sidecar_cost_usd_total", "Cost of priced requests in US dollars.", ("provider", "model"), self.cost)
        counter("sidecar_unpriced_requests_total", "Requests with usage but no known price.",
                ("provider", "model"), self.unpriced)
        _histogram(out, "sidecar_request_latency_seconds", "Total request latency in seconds.", self.latency)
        _histogram(out, "sidecar_ttft_seconds", "Time to first token in seconds.", self.ttft)

        gauge = _Family(out, "gauge")
        breaker: dict[tuple[str, ...], float] = {(p,): 0 for p in providers}
        cooldown: dict[tuple[str, ...], float] = {(p,): 0.0 for p in providers}
        if health is not None:
            now = time.time()
            for h in health.snapshot():
                breaker[(h["provider"],)] = BREAKER_VALUES.get(h["breaker"], 0)
                until = h.get("cooldown_until")
                wait = datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp() - now if until else 0.0
                cooldown[(h["provider"],)] = max(round(wait, 3), 0.0)
        gauge("sidecar_breaker_state", "Circuit breaker per provider: 0 closed, 1 half_open, 2 open.",
              ("provider",), breaker)
        gauge("sidecar_cooldown_seconds", "Seconds until a provider that asked to be left alone may be tried.",
              ("provider",), cooldown)
        gauge("sidecar_in_flight_requests", "Requests started and not yet finished.", (), {(): len(self.in_flight)})
        gauge("sidecar_up", "1 while the sidecar serves.", (), {(): 1})
        gauge("sidecar_build_info", "The running sidecar's version.", ("version",), {(__version__,): 1})
        for provide in self.gauge_providers:
            try:
                families = list(provide())
            except Exception:
                log.exception("metrics gauge provider %r failed", provide)
                continue
            for fam in families:
                names = tuple(sorted({k for labels, _ in fam.samples for k in labels}))
                gauge(fam.name, fam.help, names,
                      {tuple(labels.get(n, "") for n in names): v for labels, v in fam.samples})
        return "\n".join(out) + "\n"


class _Family:
    def __init__(self, out: list[str], kind: str) -> None:
        self.out, self.kind = out, kind

    def __call__(self, name: str, help_: str, names: tuple[str, ...], series: dict[Any, float]) -> None:
        self.out.append(f"# HELP {name} {_escape_help(help_)}")
        self.out.append(f"# TYPE {name} {self.kind}")
        for labels in sorted(series):
            self.out.append(f"{name}{_labels(names, labels)} {_num(series[labels])}")


def _histogram(out: list[str], name: str, help_: str, hist: Histogram) -> None:
    out.append(f"# HELP {name} {_escape_help(help_)}")
    out.append(f"# TYPE {name} histogram")
    names = ("provider", "model")
    for labels in sorted(hist.series):
        row = hist.series[labels]
        running = 0
        for bound, n in zip((*hist.buckets, math.inf), row[:-1], strict=True):
            running += n
            out.append(f"{name}_bucket{_labels((*names, 'le'), (*labels, _num(float(bound))))} {running}")
        out.append(f"{name}_sum{_labels(names, labels)} {_num(row[-1])}")
        out.append(f"{name}_count{_labels(names, labels)} {running}")


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def _escape_label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


# ----------------------------------------------------------------------------------------------- the app

METRICS = web.AppKey("sidecar_metrics", Metrics)


async def metrics_endpoint(request: web.Request) -> web.Response:
    state = request.app[STATE]
    text = request.app[METRICS].render(health=getattr(state.proxy, "health", None),
                                       providers=state.config.providers.keys())
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


BUDGET_FAMILIES = (
    ("sidecar_budget_limit_usd", "limit_usd", "The configured budget cap in US dollars."),
    ("sidecar_budget_spent_usd", "spent_usd", "Spend counted against the budget this period, in US dollars."),
    ("sidecar_budget_remaining_usd", "remaining_usd", "Budget left this period in US dollars (0 when exhausted)."),
)


def budget_gauges(app: web.Application) -> GaugeProvider:
    """Budget caps with spend and what is left, read at scrape time from the proxy's `BudgetBook` (the same
    `budget_status` the control API answers with), so the page never lags the request path."""

    def provide() -> list[GaugeFamily]:
        state = app[STATE]
        book = getattr(state.proxy, "budgets", None)
        if book is None or not state.config.budgets.any:
            return []
        rows = budget_status(state.config.budgets, book)["budgets"]
        families = [GaugeFamily(name, help_) for name, _, help_ in BUDGET_FAMILIES]
        resets = GaugeFamily("sidecar_budget_resets_timestamp_seconds",
                             "When the budget's period ends and its spend starts again from 0 (Unix time).")
        for row in rows:
            scope, _, name = row["scope"].partition(" ")
            labels = {"scope": scope, "name": name or scope, "period": row["period"]}
            for fam, (_, key, _) in zip(families, BUDGET_FAMILIES, strict=True):
                fam.samples.append((labels, float(row[key])))
            ends = datetime.fromisoformat(row["resets"].replace("Z", "+00:00")).timestamp()
            resets.samples.append((labels, ends))
        return [*families, resets]

    return provide


def install(app: web.Application, bus: EventBus) -> Metrics:
    """Create the collector, serve ``GET /metrics`` and listen to ``bus`` while the app runs."""
    metrics = Metrics()
    app[METRICS] = metrics
    metrics.gauge_providers.append(budget_gauges(app))
    app.router.add_get("/metrics", metrics_endpoint)

    async def listening(_app: web.Application) -> AsyncIterator[None]:
        bus.add_listener(metrics.on_event)
        try:
            yield
        finally:
            bus.remove_listener(metrics.on_event)

    app.cleanup_ctx.append(listening)
    return metrics
