"""``GET /metrics``: real traffic through a real sidecar in front of fake providers, the page parsed with
prometheus_client's own parser (a test-only dependency; the sidecar renders the format by hand)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import KEYS, Sidecar, Upstreams, config_for, start_sidecar
from sidecar.events import Event, EventBus
from sidecar.health import FAILURES_TO_OPEN
from sidecar.keys import MemoryKeyStore
from sidecar.metrics import LATENCY_BUCKETS, METRICS, GaugeFamily, Metrics

WAIT = 5.0
ODD_MODEL = 'we"ird\\model name'
"""Quotes and a backslash over HTTP. A newline is covered by the unit test below: a model name with one
currently breaks the proxy's own ``x-sidecar-served-by`` response header (aiohttp refuses CR/LF in headers)."""
UNPRICED = "fake-unpriced-model-x"


class Page:
    """A parsed /metrics page: families by name, samples by sample name."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
        for fam in self.families.values():
            for s in fam.samples:
                self.samples[s.name].append((s.labels, s.value))

    def total(self, name: str, **match: str) -> float:
        return sum(v for labels, v in self.samples[name] if all(labels.get(k) == m for k, m in match.items()))

    def one(self, name: str, **match: str) -> float:
        found = [v for labels, v in self.samples[name] if all(labels.get(k) == m for k, m in match.items())]
        assert len(found) == 1, (name, match, found)
        return found[0]


@pytest.fixture
async def sc(upstreams: Upstreams, tmp_path: Path) -> AsyncIterator[Sidecar]:
    """The conftest sidecar plus an alias ``smart`` = [openai/gpt-4o, anthropic/claude-haiku-4-5]."""
    config = config_for(upstreams, tmp_path / "data",
                        {"models": {"smart": {"targets": ["openai/gpt-4o", "anthropic/claude-haiku-4-5"]}}})
    sidecar, runner = await start_sidecar(config, MemoryKeyStore(KEYS))
    yield sidecar
    await runner.cleanup()  # type: ignore[attr-defined]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with http.post(url, data=orjson.dumps(body), headers={"content-type": "application/json"}) as resp:
        return resp.status, await resp.read()


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}


async def scrape(http: aiohttp.ClientSession, sc: Sidecar) -> Page:
    async with http.get(sc.url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return Page(await resp.text())


async def settled(http: aiohttp.ClientSession, sc: Sidecar, requests: int) -> Page:
    """The page once ``requests`` requests have finished (a stream's last byte can beat its bookkeeping)."""
    async with asyncio.timeout(WAIT):
        while True:
            page = await scrape(http, sc)
            if page.total("sidecar_requests_total") == requests and page.one("sidecar_in_flight_requests") == 0:
                return page
            await asyncio.sleep(0.02)


async def records(sc: Sidecar, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(WAIT):
        while True:
            await sc.store.flush()
            rows = await asyncio.to_thread(sc.store.recent, 1000)
            if len(rows) == count:
                return rows
            await asyncio.sleep(0.02)


def check_histogram(page: Page, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Buckets cumulative and monotonic, ``+Inf`` == ``_count``; returns _count per label set."""
    buckets: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = defaultdict(list)
    for labels, value in page.samples[f"{name}_bucket"]:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        buckets[key].append((float(labels["le"]), value))
    counts = {tuple(sorted(labels.items())): v for labels, v in page.samples[f"{name}_count"]}
    assert set(buckets) == set(counts)
    for key, rows in buckets.items():
        rows.sort()
        assert [le for le, _ in rows] == [*LATENCY_BUCKETS, math.inf]
        values = [v for _, v in rows]
        assert values == sorted(values), (name, key, values)
        assert values[-1] == counts[key]
    assert page.families[name].type == "histogram"
    return counts


async def test_metrics_follow_real_traffic(sc: Sidecar, upstreams: Upstreams, http: aiohttp.ClientSession) -> None:
    chat_url, messages_url = sc.url + "/v1/chat/completions", sc.url + "/v1/messages"
    empty = await scrape(http, sc)
    assert empty.one("sidecar_up") == 1
    assert empty.one("sidecar_in_flight_requests") == 0
    assert empty.total("sidecar_requests_total") == 0
    assert empty.one("sidecar_failovers_total") == 0
    assert {labels["provider"] for labels, _ in empty.samples["sidecar_breaker_state"]} >= {"openai", "anthropic",
                                                                                              "gemini"}
    assert empty.total("sidecar_breaker_state") == 0

    assert (await post(http, chat_url, chat("openai/gpt-4o")))[0] == 200
    status, body = await post(http, chat_url, chat("openai/gpt-4o", stream=True))
    assert status == 200 and b"[DONE]" in body
    assert (await post(http, messages_url, {"model": "anthropic/claude-haiku-4-5", "max_tokens": 20,
                                             "messages": [{"role": "user", "content": "hi"}]}))[0] == 200
    upstreams.openai.fail_next(400)
    assert (await post(http, chat_url, chat("openai/gpt-4o")))[0] == 400  # the request's fault: relayed as is
    upstreams.openai.fail_next(500)
    assert (await post(http, chat_url, chat("smart")))[0] == 200  # openai fails, anthropic answers (translated)
    assert (await post(http, chat_url, chat(f"openai/{UNPRICED}")))[0] == 200
    assert (await post(http, chat_url, chat("nowhere/at-all")))[0] == 404  # no target reached
    n = 7

    page = await settled(http, sc, n)
    rows = await records(sc, n)

    # requests by provider/model/inbound/status match the stored records one for one
    expected: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for r in rows:
        expected[(r["provider"] or "none", r["model"] if r["provider"] else "none", r["inbound"], str(r["status"]))] += 1
    got = {(lb["provider"], lb["model"], lb["inbound"], lb["status"]): v
           for lb, v in page.samples["sidecar_requests_total"]}
    assert got == expected
    assert page.one("sidecar_requests_total", provider="none", model="none", status="404") == 1
    assert page.one("sidecar_requests_total", provider="openai", model="gpt-4o", inbound="openai_chat",
                    status="200") == 2
    assert page.one("sidecar_requests_total", provider="anthropic", model="claude-haiku-4-5",
                    inbound="anthropic") == 1

    # errors: the relayed 400 and the 404
    assert page.total("sidecar_request_errors_total") == sum(1 for r in rows if r["status"] >= 400 or r["error"])
    assert page.one("sidecar_request_errors_total", provider="openai", model="gpt-4o") == 1
    assert page.one("sidecar_request_errors_total", provider="none", model="none") == 1

    # attempts and failover
    assert page.total("sidecar_attempts_total") == sum(len(r["attempts"]) for r in rows)
    assert page.one("sidecar_attempts_total", provider="openai", model="gpt-4o", outcome="error") == 2
    assert page.one("sidecar_attempts_total", provider="anthropic", model="claude-haiku-4-5", outcome="ok") == 2
    assert page.one("sidecar_failovers_total") == 1

    # tokens and cost equal the stored records' sums
    for kind in ("input", "output", "cache_read", "cache_write", "reasoning"):
        assert page.total("sidecar_tokens_total", kind=kind) == sum(r[f"{kind}_tokens"] or 0 for r in rows), kind
    assert page.total("sidecar_tokens_total", kind="input") > 0
    assert page.total("sidecar_tokens_total", kind="output") > 0
    priced = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
    assert priced and sum(priced) > 0
    assert page.total("sidecar_cost_usd_total") == pytest.approx(sum(priced), rel=1e-9)
    assert page.one("sidecar_unpriced_requests_total", provider="openai", model=UNPRICED) == 1
    assert page.total("sidecar_unpriced_requests_total") == sum(
        1 for r in rows if r["cost_usd"] is None and r["usage_source"] is not None)
    assert not [lb for lb, _ in page.samples["sidecar_cost_usd_total"] if lb["model"] == UNPRICED]

    # histograms
    latency = check_histogram(page, "sidecar_request_latency_seconds")
    assert sum(latency.values()) == n
    assert page.total("sidecar_request_latency_seconds_sum") == pytest.approx(
        sum(r["latency_ms"] for r in rows) / 1000, rel=1e-6)
    ttft = check_histogram(page, "sidecar_ttft_seconds")
    assert sum(ttft.values()) == sum(1 for r in rows if r["ttft_ms"] is not None) >= 1

    assert page.one("sidecar_build_info") == 1
    assert page.samples["sidecar_build_info"][0][0]["version"]
    for key in KEYS.values():
        assert key not in page.text


async def test_breaker_and_cooldown_gauges(sc: Sidecar, upstreams: Upstreams, http: aiohttp.ClientSession) -> None:
    url = sc.url + "/v1/chat/completions"
    upstreams.openai.fail_next(500, count=FAILURES_TO_OPEN)
    for _ in range(FAILURES_TO_OPEN):
        assert (await post(http, url, chat("openai/gpt-4o")))[0] == 500
    upstreams.anthropic.fail_next(429, headers={"retry-after": "30"})
    status, _ = await post(http, sc.url + "/v1/messages", {"model": "anthropic/claude-haiku-4-5", "max_tokens": 20,
                                                           "messages": [{"role": "user", "content": "hi"}]})
    assert status == 429
    page = await settled(http, sc, FAILURES_TO_OPEN + 1)
    assert page.one("sidecar_breaker_state", provider="openai") == 2
    assert page.one("sidecar_breaker_state", provider="anthropic") == 0
    assert page.one("sidecar_breaker_state", provider="gemini") == 0
    assert 25 <= page.one("sidecar_cooldown_seconds", provider="anthropic") <= 30
    assert page.one("sidecar_cooldown_seconds", provider="openai") == 0
    assert page.families["sidecar_breaker_state"].type == "gauge"
    assert page.one("sidecar_attempts_total", provider="openai", outcome="error") == FAILURES_TO_OPEN

    # the open breaker now refuses without any attempt: a 503 with no provider reached
    assert (await post(http, url, chat("openai/gpt-4o")))[0] == 503
    page = await settled(http, sc, FAILURES_TO_OPEN + 2)
    assert page.one("sidecar_requests_total", provider="none", status="503") == 1


async def test_odd_model_names_are_escaped(sc: Sidecar, http: aiohttp.ClientSession) -> None:
    status, _ = await post(http, sc.url + "/v1/chat/completions", chat(f"openai/{ODD_MODEL}"))
    assert status == 200
    page = await settled(http, sc, 1)
    assert page.one("sidecar_requests_total", provider="openai", model=ODD_MODEL) == 1
    assert page.one("sidecar_attempts_total", model=ODD_MODEL, outcome="ok") == 1
    assert 'model="we\\"ird\\\\model name"' in page.text
    assert sum(1 for line in page.text.splitlines() if "ird" in line) == len(
        [s for fam in page.families.values() for s in fam.samples if s.labels.get("model") == ODD_MODEL])


def test_render_escapes_and_extension_gauges(caplog: pytest.LogCaptureFixture) -> None:
    m = Metrics()
    odd = 'a"b\\c\nd'
    m.on_event(Event("request_started", {"id": "r1"}))
    m.on_event(Event("attempt", {"request_id": "r1", "provider": "p", "model": odd, "status": None,
                                 "error": "refused", "duration_ms": 1.0}))
    m.on_event(Event("request_finished", {"id": "r1", "provider": "p", "model": odd, "inbound": "gemini",
                                          "status": 502, "error": "refused", "latency_ms": 130000.0,
                                          "attempts": [{}], "input_tokens": None}))
    m.gauge_providers.append(lambda: [GaugeFamily("sidecar_budget_remaining_usd", "Budget left.",
                                                  [({"budget": 'daily "x"'}, 1.5)])])

    def broken() -> list[GaugeFamily]:
        raise RuntimeError("boom")

    m.gauge_providers.append(broken)
    with caplog.at_level(logging.ERROR, "sidecar.metrics"):
        page = Page(m.render(providers=["p", "q"]))
    assert "boom" in caplog.text
    assert page.one("sidecar_requests_total", model=odd, status="502", inbound="gemini") == 1
    assert page.one("sidecar_attempts_total", model=odd, outcome="error") == 1
    assert page.one("sidecar_budget_remaining_usd", budget='daily "x"') == 1.5
    assert page.one("sidecar_in_flight_requests") == 0
    assert page.one("sidecar_breaker_state", provider="q") == 0
    # 130 s is beyond the last finite bucket: only +Inf holds it
    assert page.one("sidecar_request_latency_seconds_bucket", le="120.0") == 0
    assert page.one("sidecar_request_latency_seconds_bucket", le="+Inf") == 1
    assert page.total("sidecar_unpriced_requests_total") == 0  # no usage: not "unpriced", just nothing


def test_model_label_cardinality_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sidecar.metrics.MAX_MODEL_LABELS", 3)
    m = Metrics()
    for i in range(6):
        m.on_event(Event("attempt", {"provider": "p", "model": f"m{i}", "status": 200, "error": None}))
    page = Page(m.render())
    assert {lb["model"] for lb, _ in page.samples["sidecar_attempts_total"]} == {"m0", "m1", "m2", "other"}
    assert page.one("sidecar_attempts_total", model="other") == 3


async def test_listener_errors_never_reach_the_publisher(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise ValueError("listener bug")

    bus.add_listener(broken)
    bus.add_listener(lambda e: seen.append(e.type))
    sub = bus.subscribe()
    with caplog.at_level(logging.ERROR, "sidecar.events"):
        bus.publish("attempt", {"x": 1})
    assert "listener bug" in caplog.text
    assert seen == ["attempt"]
    assert (await sub.get()).type == "attempt"
    bus.remove_listener(broken)
    bus.publish("log", {})
    assert seen == ["attempt", "log"]


async def test_collector_is_reachable_for_extensions(sc: Sidecar, http: aiohttp.ClientSession) -> None:
    sc.app[METRICS].gauge_providers.append(  # type: ignore[index]
        lambda: [GaugeFamily("sidecar_test_gauge", "A test gauge.", [({}, 7)])])
    page = await scrape(http, sc)
    assert page.one("sidecar_test_gauge") == 7
