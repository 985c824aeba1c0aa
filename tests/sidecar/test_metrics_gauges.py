"""``/metrics`` scrape-time gauges: budget limit / spent / remaining / reset per configured cap, and the breaker
state of each provider through closed → open → half_open. Real traffic through a real sidecar against the fakes;
the page parsed with prometheus_client's parser.

Prices are ``[prices]`` overrides of $1000 per million tokens (input, cache and output alike), so one fake call
with the text "hi" (prompt 8 tokens, completion 7: "Hello from fake-openai (gpt-4o-mini): you said hi") costs
15 × 1000 / 1e6 = $0.015 on either provider.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import KEYS, Sidecar, Upstreams, config_for, start_sidecar
from sidecar.health import FAILURES_TO_OPEN
from sidecar.keys import MemoryKeyStore
from sidecar.state import STATE

CALL_USD = 15 * 1000 / 1e6  # (8 prompt + 7 completion tokens) × $1000 per million
PRICES = {"openai/gpt-4o-mini": {"input": 1000.0, "output": 1000.0},
          "anthropic/claude-haiku-4-5": {"input": 1000.0, "output": 1000.0}}
BUDGETS = {"mode": "block", "daily_usd": 1.0, "monthly_usd": 10.0,
           "providers": {"openai": {"daily_usd": 0.5}},
           "clients": {"metrics-test": {"daily_usd": 0.02}}}
SERIES = ("sidecar_budget_limit_usd", "sidecar_budget_spent_usd", "sidecar_budget_remaining_usd",
          "sidecar_budget_resets_timestamp_seconds")


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name → {sorted labels: value}; also checks every family parses and has one TYPE."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def key(scope: str, name: str, period: str) -> tuple[tuple[str, str], ...]:
    return (("name", name), ("period", period), ("scope", scope))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.fixture
async def sc(upstreams: Upstreams, tmp_path: Path) -> AsyncIterator[Sidecar]:
    config = config_for(upstreams, tmp_path / "data", {"prices": PRICES, "budgets": BUDGETS})
    sidecar, runner = await start_sidecar(config, MemoryKeyStore(KEYS))
    yield sidecar
    await runner.cleanup()  # type: ignore[attr-defined]


async def scrape(http: aiohttp.ClientSession, sc: Sidecar) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    async with http.get(sc.url + "/metrics") as resp:
        assert resp.status == 200
        return parse(await resp.text())


async def chat(http: aiohttp.ClientSession, sc: Sidecar, model: str, client: str | None = None) -> int:
    headers = {"X-Sidecar-Client": client} if client else {}
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(sc.url + "/v1/chat/completions", data=orjson.dumps(body), headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_budget_gauges_follow_spend(sc: Sidecar, http: aiohttp.ClientSession) -> None:
    page = await scrape(http, sc)
    caps = {key("global", "global", "daily"): 1.0, key("global", "global", "monthly"): 10.0,
            key("provider", "openai", "daily"): 0.5, key("client", "metrics-test", "daily"): 0.02}
    assert page["sidecar_budget_limit_usd"] == caps
    assert page["sidecar_budget_remaining_usd"] == caps
    assert page["sidecar_budget_spent_usd"] == dict.fromkeys(caps, 0.0)
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    first_of_next_month = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    resets = page["sidecar_budget_resets_timestamp_seconds"]
    assert resets[key("global", "global", "daily")] == resets[key("client", "metrics-test", "daily")] == (
        midnight.timestamp())
    assert resets[key("global", "global", "monthly")] == first_of_next_month.timestamp()

    assert await chat(http, sc, "openai/gpt-4o-mini", client="metrics-test") == 200
    assert await chat(http, sc, "openai/gpt-4o-mini", client="metrics-test") == 200  # now $0.03 > its $0.02 cap
    assert await chat(http, sc, "anthropic/claude-haiku-4-5", client="someone-else") == 200
    assert await chat(http, sc, "openai/gpt-4o-mini", client="metrics-test") == 429  # client budget exhausted

    page = await scrape(http, sc)
    spent = page["sidecar_budget_spent_usd"]
    assert spent[key("global", "global", "daily")] == pytest.approx(3 * CALL_USD)  # $0.045
    assert spent[key("global", "global", "monthly")] == pytest.approx(3 * CALL_USD)
    assert spent[key("provider", "openai", "daily")] == pytest.approx(2 * CALL_USD)  # $0.03, not anthropic's
    assert spent[key("client", "metrics-test", "daily")] == pytest.approx(2 * CALL_USD)
    remaining = page["sidecar_budget_remaining_usd"]
    assert remaining[key("global", "global", "daily")] == pytest.approx(1.0 - 3 * CALL_USD)  # $0.955
    assert remaining[key("global", "global", "monthly")] == pytest.approx(10.0 - 3 * CALL_USD)
    assert remaining[key("provider", "openai", "daily")] == pytest.approx(0.5 - 2 * CALL_USD)
    assert remaining[key("client", "metrics-test", "daily")] == 0.0  # overspent: never negative

    async with http.get(sc.url + "/_sidecar/budgets") as resp:
        control = orjson.loads(await resp.read())["budgets"]
    assert len(control) == len(caps)
    for row in control:
        scope, _, name = row["scope"].partition(" ")
        k = key(scope, name or "global", row["period"])
        assert (page["sidecar_budget_limit_usd"][k], spent[k], remaining[k]) == (
            row["limit_usd"], row["spent_usd"], row["remaining_usd"])


async def test_no_budget_series_without_budgets(sidecar: Sidecar, http: aiohttp.ClientSession) -> None:
    page = await scrape(http, sidecar)
    assert not any(name in page for name in SERIES)
    assert "sidecar_breaker_state" in page


async def test_breaker_state_closed_open_half_open(sc: Sidecar, upstreams: Upstreams,
                                                   http: aiohttp.ClientSession) -> None:
    page = await scrape(http, sc)
    breaker = page["sidecar_breaker_state"]
    assert breaker[(("provider", "openai"),)] == 0 and breaker[(("provider", "anthropic"),)] == 0

    upstreams.openai.fail_next(500, count=FAILURES_TO_OPEN)
    for _ in range(FAILURES_TO_OPEN):
        assert await chat(http, sc, "openai/gpt-4o-mini") == 500
    page = await scrape(http, sc)
    assert page["sidecar_breaker_state"][(("provider", "openai"),)] == 2  # open
    assert page["sidecar_breaker_state"][(("provider", "anthropic"),)] == 0

    health = sc.app[STATE].proxy.health  # type: ignore[index,attr-defined]
    later = time.monotonic() + 24 * 3600
    health._clock = lambda: later  # past the open period: the next request may probe
    page = await scrape(http, sc)
    assert page["sidecar_breaker_state"][(("provider", "openai"),)] == 1  # half_open

    assert await chat(http, sc, "openai/gpt-4o-mini") == 200  # the probe succeeds and closes it
    page = await scrape(http, sc)
    assert page["sidecar_breaker_state"][(("provider", "openai"),)] == 0
