"""Budgets over real HTTP: global, provider and client caps crossed in block and warn mode, under concurrency.

One fake gpt-4o-mini call with the text "hello" costs, by hand from the published prices ($0.15 input, $0.075
cached input, $0.60 output per million): prompt 8 tokens of which 4 cached, 7 output tokens ("Hello from
fake-openai (gpt-4o-mini): you said hello")
-> (4 × 0.15 + 4 × 0.075 + 7 × 0.60) / 1e6 = $0.0000051. Caps are set at 3.5 calls, so the 4th call crosses.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
import pytest

from conftest import KEYS, Upstreams, config_for, start_sidecar
from sidecar.config import ConfigError, config_from_dict
from sidecar.keys import MemoryKeyStore
from sidecar.records import RequestRecord
from sidecar.store import RequestStore

COST = (4 * 0.15 + 4 * 0.075 + 7 * 0.60) / 1e6
CAP = 3.5 * COST
CHAT = "/v1/chat/completions"
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


class Running:
    def __init__(self, ups: Upstreams, tmp: Path, budgets: dict, models: dict | None = None) -> None:
        extra = {"budgets": budgets} | ({"models": models} if models else {})
        self.config = config_for(ups, tmp / "data", extra)

    async def __aenter__(self):
        self.sc, self.runner = await start_sidecar(self.config, MemoryKeyStore(KEYS))
        return self.sc

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()  # type: ignore[attr-defined]


async def send(http, url: str, client: str | None = None, body: dict = BODY, path: str = CHAT):
    headers = {"X-Sidecar-Client": client} if client else {}
    async with http.post(url + path, data=orjson.dumps(body), headers=headers) as resp:
        return resp.status, orjson.loads(await resp.read()), resp.headers


async def spend(sc) -> float:
    await sc.store.flush()
    rows = await asyncio.to_thread(sc.store.recent, 1000)
    return sum(r["cost_usd"] or 0 for r in rows)


def assert_budget_429(status, body, headers, scope: str, message_of=lambda b: b["error"]["message"]):
    assert status == 429, body
    message = message_of(body)
    assert f"daily budget for {scope} exhausted" in message and f"of ${CAP:.4f}" in message
    assert "resets at " + datetime.now(UTC).strftime("%Y-") in message
    assert 1 <= int(headers["Retry-After"]) <= 86401 and headers["x-should-retry"] == "false"


async def test_one_cost_is_what_the_hand_calculation_says(upstreams, tmp_path, http):
    async with Running(upstreams, tmp_path, {"daily_usd": 1.0}) as sc:
        assert (await send(http, sc.url))[0] == 200
        assert await spend(sc) == pytest.approx(COST)


async def test_global_daily_budget_blocks_once_crossed(upstreams, tmp_path, http):
    async with Running(upstreams, tmp_path, {"daily_usd": CAP}) as sc:
        statuses = [(await send(http, sc.url))[0] for _ in range(4)]
        assert statuses == [200, 200, 200, 200]  # the 4th starts at 3 × COST < CAP and crosses it
        before = len(upstreams.openai.received)
        status, body, headers = await send(http, sc.url)
        assert_budget_429(status, body, headers, "global")
        assert len(upstreams.openai.received) == before  # refused without contacting the provider
        status, body, headers = await send(http, sc.url, body={"model": "anthropic/claude-haiku-4-5", "max_tokens": 9,
                                                               "messages": [{"role": "user", "content": "hi"}]},
                                           path="/v1/messages")
        assert_budget_429(status, body, headers, "global", lambda b: b["type"] == "error" and b["error"]["message"])
        assert body["error"]["type"] == "rate_limit_error"
        async with http.get(sc.url + "/_sidecar/budgets") as resp:
            view = orjson.loads(await resp.read())
        assert view["mode"] == "block" and view["budgets"][0]["scope"] == "global"
        assert view["budgets"][0]["spent_usd"] == pytest.approx(4 * COST, abs=1e-6)


async def test_concurrent_requests_of_one_client_overspend_by_at_most_one(upstreams, tmp_path, http):
    async with Running(upstreams, tmp_path, {"daily_usd": CAP}) as sc:
        results = await asyncio.gather(*(send(http, sc.url, "loop-agent") for _ in range(20)))
        ok = [r for r in results if r[0] == 200]
        assert len(ok) == 4 and all(r[0] == 429 for r in results if r[0] != 200)
        assert CAP <= await spend(sc) <= CAP + COST


async def test_concurrent_clients_overspend_by_at_most_one_request_each(upstreams, tmp_path, http):
    async with Running(upstreams, tmp_path, {"daily_usd": CAP}) as sc:
        results = await asyncio.gather(*(send(http, sc.url, f"agent-{i % 3}") for i in range(30)))
        ok = sum(1 for r in results if r[0] == 200)
        assert 4 <= ok <= 3 + 3  # under the cap (3 calls) plus at most one in flight per client
        assert CAP <= await spend(sc) <= CAP + 3 * COST


async def test_provider_budget_blocks_that_provider_and_fails_over_to_the_next(upstreams, tmp_path, http):
    budgets = {"providers": {"openai": {"daily_usd": CAP}}}
    models = {"smart": {"targets": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]}}
    async with Running(upstreams, tmp_path, budgets, models) as sc:
        for _ in range(4):
            assert (await send(http, sc.url))[0] == 200
        assert_budget_429(*await send(http, sc.url), "provider openai")
        status, _, headers = await send(http, sc.url, body=BODY | {"model": "smart"})
        assert status == 200 and headers["x-sidecar-served-by"] == "anthropic/claude-haiku-4-5"
        status, _, _ = await send(http, sc.url, body=BODY | {"model": "gemini/gemini-2.5-flash"})
        assert status == 200  # other providers are not capped


async def test_client_budget_blocks_that_client_only(upstreams, tmp_path, http):
    async with Running(upstreams, tmp_path, {"clients": {"claude-cli": {"daily_usd": CAP}}}) as sc:
        results = await asyncio.gather(*(send(http, sc.url, "claude-cli/1.0.3 (external, cli)") for _ in range(10)))
        assert sum(1 for r in results if r[0] == 200) == 4
        assert_budget_429(*next(r for r in results if r[0] == 429), "client claude-cli")
        assert (await send(http, sc.url, "other-tool"))[0] == 200
        assert (await send(http, sc.url))[0] == 200  # unlabelled beyond the SDK's user agent


async def test_warn_mode_lets_requests_through_with_a_warning(upstreams, tmp_path, http, caplog):
    budgets = {"mode": "warn", "daily_usd": CAP, "clients": {"a": {"daily_usd": CAP}}}
    async with Running(upstreams, tmp_path, budgets) as sc:
        results = await asyncio.gather(*(send(http, sc.url, "a") for _ in range(8)))
        assert all(r[0] == 200 for r in results)
        await asyncio.gather(*(send(http, sc.url, "a") for _ in range(2)))  # spend is now past the cap
        status, _, headers = await send(http, sc.url, "a")
        assert status == 200 and "daily budget for global exhausted" in headers["x-sidecar-warning"]
        assert await spend(sc) == pytest.approx(11 * COST)
    assert any("over budget (warn mode)" in r.getMessage() for r in caplog.records)


async def test_spend_so_far_is_read_from_the_store_at_start(upstreams, tmp_path, http):
    cfg = config_for(upstreams, tmp_path / "data", {"budgets": {"monthly_usd": 1.0}})
    store = RequestStore(cfg.db_path)
    store.open()
    month_start = datetime.now(UTC).strftime("%Y-%m-01T00:00:01.000Z")
    store.add(RequestRecord(id="old", ts=month_start, inbound="openai_chat", requested_model="m",
                            provider="openai", model="gpt-4o", cost_usd=1.25, status=200))
    store.add(RequestRecord(id="older", ts="2000-01-01T00:00:00.000Z", inbound="openai_chat",
                            requested_model="m", provider="openai", cost_usd=99.0))
    store.close()
    sc, runner = await start_sidecar(cfg, MemoryKeyStore(KEYS))
    try:
        status, body, _ = await send(http, sc.url)
        assert status == 429 and "monthly budget for global exhausted: $1.2500 spent of $1.0000" in body["error"]["message"]
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("budgets, needle", [
    ({"mode": "stop"}, "mode = 'stop'"),
    ({"daily_usd": -1}, "daily_usd must be a non-negative"),
    ({"daily": 5}, "unknown key(s): daily"),
    ({"providers": {"nope": {"daily_usd": 1}}}, "[budgets.providers.nope] names no configured provider"),
    ({"clients": {"a": {"weekly_usd": 1}}}, "[budgets.clients.a] unknown key(s): weekly_usd"),
    ({"clients": {"a": 3}}, "[budgets.clients.a] must be a table"),
])
def test_budget_config_errors_name_the_key(budgets, needle):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"budgets": budgets})
    assert needle in str(info.value)
