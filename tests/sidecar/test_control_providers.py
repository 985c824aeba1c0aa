"""``GET /_sidecar/providers/{id}`` over real HTTP: a real sidecar against the fake providers, plus a tiny
in-test upstream that answers successfully with OpenAI-style rate-limit headers (the fakes add such headers only
to the errors a test injects).

Expected prices are read from the genai-prices catalog directly, not through `sidecar.pricing`, so the page is
checked against the catalog rather than against the code that produced it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from genai_prices import data_snapshot

from sidecar.app import build_app
from sidecar.config import config_from_dict
from sidecar.keys import MemoryKeyStore
from sidecar.server import start_server
from sidecar.store import RequestStore

if TYPE_CHECKING:  # never imported at run time: `conftest` is ambiguous next to tests/tui/conftest.py
    from conftest import Upstreams

KEYS = {"openai": "sk-test-openai-0001", "anthropic": "sk-ant-wrong-key-0009"}
"""The fake Anthropic expects another key, so its model list fails with a 401; Gemini has no key at all."""
OVERRIDE = {"input": 0.5, "output": 1.5, "cache_read": 0.05}
TINY_HEADERS = {
    "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "30000",
    "x-ratelimit-remaining-tokens": "29000", "x-ratelimit-reset-tokens": "6m0s",
}  # fmt: skip
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


class Tiny:
    """An OpenAI-compatible upstream that needs no key and sends rate-limit headers on every success."""

    def __init__(self) -> None:
        self.model_lists = 0
        self.runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1"

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        answer = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}  # fmt: skip
        return web.json_response(answer, headers=TINY_HEADERS)

    async def models(self, request: web.Request) -> web.Response:
        self.model_lists += 1
        return web.json_response({"object": "list", "data": [
            {"id": "tiny-1", "object": "model", "created": 1735689600, "owned_by": "me"}]})


@pytest.fixture
async def tiny() -> AsyncIterator[Tiny]:
    t = Tiny()
    await t.start()
    yield t
    assert t.runner is not None
    await t.runner.cleanup()


@pytest.fixture
def keystore() -> MemoryKeyStore:
    return MemoryKeyStore(KEYS)


@pytest.fixture
async def base(upstreams: Upstreams, tiny: Tiny, keystore: MemoryKeyStore, tmp_path: Path) -> AsyncIterator[str]:
    """A real sidecar: the three fakes, the tiny upstream, a dead one, and one price override."""
    raw = {
        "providers": {
            "openai": {"base_url": upstreams.openai.base_url},
            "anthropic": {"base_url": upstreams.anthropic.base_url},
            "gemini": {"base_url": upstreams.gemini.base_url},
            "tiny": {"adapter": "openai", "base_url": tiny.base_url, "key": False},
            "dead": {"adapter": "openai", "base_url": "http://127.0.0.1:9/v1", "key": False},
        },
        "prices": {"openai/gpt-4o-mini": OVERRIDE},
    }
    config = replace(config_from_dict(raw), data_dir=tmp_path / "data")
    store = RequestStore(config.db_path, body_cap=config.body_cap_bytes)
    runner, url = await start_server(build_app(config, keys=keystore, store=store), "127.0.0.1", 0)
    yield url
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def page(http: aiohttp.ClientSession, base: str, pid: str, query: str = "") -> dict[str, Any]:
    async with http.get(f"{base}/_sidecar/providers/{pid}{query}") as resp:
        raw = await resp.read()
        assert resp.status == 200, raw
    for key in KEYS.values():
        assert key.encode() not in raw  # presence only, never the key (nor a provider's echo of it)
    data = orjson.loads(raw)
    assert set(data) == {"id", "overview", "models", "pricing", "limits", "features", "health"}
    return data


async def chat(http: aiohttp.ClientSession, base: str, model: str) -> int:
    async with http.post(f"{base}/v1/chat/completions", json={"model": model, **CHAT}) as resp:
        await resp.read()
        return resp.status


def catalog_rates(provider: str, model: str) -> dict[str, float | None]:
    _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    price = info.get_prices(datetime.now(tz=UTC))
    out = {}
    for meter in ("input", "output", "cache_read", "cache_write"):
        v = getattr(price, f"{meter}_mtok", None)
        out[meter] = None if v is None else float(getattr(v, "base", v))
    return out


def model_list_calls(up: Any) -> list[Any]:
    return [r for r in up.received if r.method == "GET" and r.path.endswith("/models")]


async def test_openai_page_models_prices_features_and_health(http, base, upstreams: Upstreams) -> None:
    data = await page(http, base, "openai")
    o = data["overview"]
    assert (o["adapter"], o["base_url"], o["needs_key"], o["has_key"]) == ("openai", upstreams.openai.base_url,
                                                                           True, True)
    assert o["auth_header"] == "authorization" and o["origin"] == "built-in, overridden"

    # Models: the fake's own list, asked with the keyring's key (the fake refuses any other key).
    assert data["models"]["error"] is None
    assert [m["model"] for m in data["models"]["models"]] == sorted(upstreams.openai.models)
    calls = model_list_calls(upstreams.openai)
    assert len(calls) == 1 and calls[0].headers["authorization"] == f"Bearer {KEYS['openai']}"
    await page(http, base, "openai")
    assert len(model_list_calls(upstreams.openai)) == 1  # cached for a minute
    await page(http, base, "openai", "?refresh=1")
    assert len(model_list_calls(upstreams.openai)) == 2

    # Pricing: the override as configured (an unset cache meter is charged at the input rate), the rest
    # exactly the catalog's rates.
    prices = {r["model"]: r for r in data["pricing"]["models"]}
    assert set(prices) == set(upstreams.openai.models) and data["pricing"]["unpriced"] == []
    mini = prices["gpt-4o-mini"]
    assert mini["source"] == "override"
    assert (mini["input"], mini["output"], mini["cache_read"], mini["cache_write"]) == (0.5, 1.5, 0.05, 0.5)
    expected = catalog_rates("openai", "gpt-4o")
    row = prices["gpt-4o"]
    assert row["source"] == "catalog" and data["pricing"]["catalog"].startswith("genai-prices")
    assert (row["input"], row["output"]) == (expected["input"], expected["output"])
    assert row["cache_read"] == (expected["cache_read"] if expected["cache_read"] is not None else expected["input"])
    assert row["tiered"] is False

    features = {f["name"]: f for f in data["features"]}
    assert list(features) == ["streaming", "tools", "structured_output", "vision"]
    assert all(f["supported"] is True for f in features.values())
    assert "response_format" in features["structured_output"]["detail"]
    assert "stream_options.include_usage" in features["streaming"]["detail"]

    assert data["limits"] is None and data["health"] is None  # nothing has been sent yet
    assert await chat(http, base, "openai/gpt-4o-mini") == 200
    health = (await page(http, base, "openai"))["health"]
    assert health["breaker"] == "closed" and health["recent_attempts"] == 1 and health["error_rate"] == 0
    assert "gpt-4o-mini" in health["ttft_ms_ewma"]


async def test_limits_from_a_successful_answer(http, base, tiny: Tiny) -> None:
    assert (await page(http, base, "tiny"))["limits"] is None
    assert await chat(http, base, "tiny/tiny-1") == 200
    data = await page(http, base, "tiny")
    limits = data["limits"]
    assert limits["status"] == 200 and limits["family"] == "openai" and limits["retry_after_s"] is None
    buckets = {b["name"]: b for b in limits["buckets"]}
    assert set(buckets) == {"requests", "tokens"}
    assert (buckets["requests"]["limit"], buckets["requests"]["remaining"]) == (500, 499)
    assert (buckets["tokens"]["limit"], buckets["tokens"]["remaining"]) == (30000, 29000)
    assert buckets["tokens"]["used_pct"] == pytest.approx(3.3, abs=0.05)
    reset_at = datetime.fromisoformat(buckets["tokens"]["reset_at"].replace("Z", "+00:00"))
    seen_at = datetime.fromisoformat(limits["seen_at"].replace("Z", "+00:00"))
    assert 355 <= (reset_at - seen_at).total_seconds() <= 361  # "6m0s" after the answer, second resolution
    assert 0 < buckets["tokens"]["reset_in_s"] <= 360
    # A provider that needs no key has no key question, and the tiny list is used for models and prices.
    assert data["overview"]["has_key"] is None and data["overview"]["auth_header"] is None
    assert [m["id"] for m in data["models"]["models"]] == ["tiny/tiny-1"]
    assert data["pricing"]["unpriced"] == ["tiny-1"] and data["pricing"]["models"] == []


async def test_limits_from_an_anthropic_429(http, base, upstreams: Upstreams) -> None:
    headers = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
               "anthropic-ratelimit-requests-reset": "2030-01-01T00:00:00Z",
               "anthropic-ratelimit-input-tokens-limit": "40000",
               "anthropic-ratelimit-input-tokens-remaining": "39000", "retry-after": "7"}  # fmt: skip
    upstreams.anthropic.expect_key = None  # this test is about the answer's headers, not the (wrong) key
    upstreams.anthropic.fail_next(429, headers=headers)
    body = {"model": "anthropic/claude-sonnet-4-5", "max_tokens": 10, **CHAT}
    async with http.post(f"{base}/v1/messages", json=body) as resp:
        assert resp.status == 429
    limits = (await page(http, base, "anthropic"))["limits"]
    assert limits["status"] == 429 and limits["family"] == "anthropic"
    buckets = {b["name"]: b for b in limits["buckets"]}
    assert set(buckets) == {"requests", "input_tokens"}
    assert buckets["requests"]["remaining"] == 0 and buckets["requests"]["reset_at"] == "2030-01-01T00:00:00Z"
    assert buckets["input_tokens"]["used_pct"] == 2.5
    assert 0 < limits["retry_after_s"] <= 7


async def test_model_list_failures_are_strings_and_prices_fall_back_to_the_catalog(http, base) -> None:
    anthropic = await page(http, base, "anthropic")
    assert anthropic["models"]["models"] == []
    assert anthropic["models"]["error"].startswith("HTTP 401")  # the fake refuses the wrong key
    rows = anthropic["pricing"]["models"]
    assert rows and all(r["source"] == "catalog" for r in rows)
    catalog = {m.id for p in data_snapshot.get_snapshot().providers if p.id == "anthropic" for m in p.models}
    assert {r["model"] for r in rows} | set(anthropic["pricing"]["unpriced"]) == catalog

    gemini = await page(http, base, "gemini")
    assert gemini["overview"]["has_key"] is False
    assert "sidecar keys set gemini" in gemini["models"]["error"]
    structured = next(f for f in gemini["features"] if f["name"] == "structured_output")
    assert structured["supported"] and "generationConfig" in structured["detail"]
    assert any(r["tiered"] for r in gemini["pricing"]["models"])  # the catalog's long-prompt tiers show

    dead = await page(http, base, "dead")
    assert dead["models"]["error"].startswith("cannot reach http://127.0.0.1:9/v1")


async def test_refresh_asks_the_keyring_and_the_provider_again(http, base, keystore, upstreams: Upstreams) -> None:
    first = await page(http, base, "gemini")
    assert first["overview"]["has_key"] is False and first["models"]["models"] == []
    assert upstreams.gemini.expect_key is not None
    keystore.set("gemini", upstreams.gemini.expect_key)  # as `sidecar keys set` from another process would
    assert (await page(http, base, "gemini"))["overview"]["has_key"] is False  # cached: no keyring poll
    fresh = await page(http, base, "gemini", "?refresh=1")
    assert fresh["overview"]["has_key"] is True and fresh["models"]["error"] is None
    assert [m["model"] for m in fresh["models"]["models"]] == sorted(upstreams.gemini.models)
    assert upstreams.gemini.expect_key.encode() not in orjson.dumps(fresh)


async def test_unknown_provider_is_a_404_in_json(http, base) -> None:
    async with http.get(f"{base}/_sidecar/providers/nope") as resp:
        assert resp.status == 404 and resp.content_type == "application/json"
        assert (await resp.json())["error"]["message"] == "no provider 'nope' in the configuration"
