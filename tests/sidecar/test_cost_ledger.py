"""Cost with its formula: expected dollars written by hand from published list prices (USD per million tokens).

gpt-4o-mini: input 0.15, cached input 0.075, output 0.60.
claude-sonnet-4-5: input 3, cache write 3.75, cache read 0.30, output 15 (below the 200k-token tier).
gemini-2.5-flash: input 0.30, output 2.50 (thinking tokens are output).
"""

from __future__ import annotations

import pytest

from adapters.ir import Usage
from adapters.presets import PRESETS
from sidecar.config import Price
from sidecar.pricing import CATALOG_VERSION, PriceBook

CASES = [
    # provider, model, usage (input includes cached; output includes reasoning), expected USD by hand
    ("openai", "gpt-4o-mini", Usage(input=1000, output=500), (1000 * 0.15 + 500 * 0.60) / 1e6),
    ("openai", "gpt-4o-mini", Usage(input=1000, output=500, cache_read=400),
     (600 * 0.15 + 400 * 0.075 + 500 * 0.60) / 1e6),
    ("anthropic", "claude-sonnet-4-5", Usage(input=1000, output=500, cache_read=200, cache_write=100),
     (700 * 3 + 200 * 0.30 + 100 * 3.75 + 500 * 15) / 1e6),
    ("gemini", "gemini-2.5-flash", Usage(input=2000, output=800, reasoning=300), (2000 * 0.30 + 800 * 2.50) / 1e6),
]


@pytest.mark.parametrize("provider,model,usage,expected", CASES)
def test_cost_and_breakdown_match_the_hand_computed_dollars(provider, model, usage, expected):
    total, breakdown = PriceBook(PRESETS).cost_breakdown(provider, model, usage)
    assert total == pytest.approx(expected, rel=1e-9)
    assert breakdown["source"] == CATALOG_VERSION
    assert sum(m["usd"] for m in breakdown["meters"]) == pytest.approx(expected, rel=1e-6)
    assert sum(m["tokens"] for m in breakdown["meters"]) == usage.input + usage.output


def test_override_and_unknown_price():
    book = PriceBook(PRESETS, {"openai/gpt-4o-mini": Price(input=1.0, output=2.0, cache_read=0.5)})
    total, breakdown = book.cost_breakdown("openai", "gpt-4o-mini", Usage(input=100, output=10, cache_read=40))
    assert total == pytest.approx((60 * 1.0 + 40 * 0.5 + 10 * 2.0) / 1e6)
    assert breakdown["source"] == "config [prices] override"
    assert book.cost_breakdown("openai", "no-such-model-xyz", Usage(10, 10)) == (None, None)


async def test_records_carry_the_breakdown(sidecar):
    import openai

    client = openai.AsyncOpenAI(base_url=f"{sidecar.url}/v1", api_key="x", max_retries=0)
    await client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    await sidecar.store.flush()
    [rec] = sidecar.store.recent(1)
    breakdown = rec["cost_breakdown"]
    assert breakdown["total_usd"] == pytest.approx(rec["cost_usd"])
    assert {m["meter"] for m in breakdown["meters"]} >= {"input (uncached)", "cache read", "output (incl. reasoning)"}
