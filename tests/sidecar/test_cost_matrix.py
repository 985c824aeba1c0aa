"""Usage and cost for each provider format × non-stream/stream × {plain, cache read, cache write, reasoning}, through
the real proxy against the fakes, with the expected dollars written by hand from the published list prices.

Every request says "hi", so the fakes (sidecar/fakes/__init__.py) report a prompt of P = 1 word + 7 = 8 tokens and an
answer of O = 7 tokens ("Hello from fake-<name> (<model>): you said hi"). The cache / thinking figures the fakes
report are module constants (``CACHED_TOKENS``, ``CACHE_WRITE_TOKENS``, ``THOUGHTS_TOKENS``); each case sets them
with monkeypatch, and wraps the OpenAI fake's usage builder to add ``reasoning_tokens`` (the fakes have no knob
for that yet).

List prices, USD per million tokens (genai-prices 0.2.3, checked once against the catalog, written here literally):

- openai gpt-4o-mini: input 0.15, cached input 0.075, output 0.60;  o4-mini: 1.10, 0.275, 4.40
- anthropic claude-sonnet-4-5: input 3, cache read 0.30, cache write (5 min) 3.75, output 15
- gemini gemini-2.5-flash: input 0.30, cached input 0.03, output 2.50 (thinking tokens are billed as output)
- groq llama-3.3-70b-versatile: input 0.59, output 0.79, no cache price (cached tokens pay the input rate);
  qwen/qwen3-32b: input 0.29, output 0.59

Reasoning tokens are part of the output count in every format (Gemini's ``thoughtsTokenCount`` is added to it), so
they are billed once, at the output rate. Anthropic reports extended thinking inside ``output_tokens`` with no
separate count, so it has no reasoning case here: its output case is the plain one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from conftest import KEYS, Sidecar, Upstreams, config_for, start_sidecar
from sidecar.fake_upstream import FakeUpstream
from sidecar.fakes import anthropic as fake_anthropic
from sidecar.fakes import gemini as fake_gemini
from sidecar.fakes import openai as fake_openai
from sidecar.keys import MemoryKeyStore

GROQ_KEY = "gsk-test-groq-0004"


def openai_reasoning(n: int) -> Callable[[Any], dict[str, Any]]:
    """The OpenAI fake's usage with ``n`` of its completion tokens declared as reasoning."""
    original = fake_openai._usage

    def usage(answer: Any) -> dict[str, Any]:
        u = original(answer)
        u["completion_tokens_details"]["reasoning_tokens"] = n
        return u

    return usage


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    """As the client asks for it: provider/model."""
    knobs: dict[tuple[Any, str], Any]
    """(fake module, attribute) → value for this case."""
    tokens: tuple[int, int, int, int, int]
    """Recorded input (cache included), output (reasoning included), cache_read, cache_write, reasoning."""
    usd: float
    inbound: str = field(default="openai_chat")


CASES = [
    # ---- OpenAI chat → openai
    Case("openai-plain", "openai/gpt-4o-mini", {(fake_openai, "CACHED_TOKENS"): 0},
         (8, 7, 0, 0, 0), 5.4e-06),  # (8 × 0.15 + 7 × 0.60) / 1e6 = (1.2 + 4.2) / 1e6
    Case("openai-cache-read", "openai/gpt-4o-mini", {(fake_openai, "CACHED_TOKENS"): 4},
         (8, 7, 4, 0, 0), 5.1e-06),  # (4 × 0.15 + 4 × 0.075 + 7 × 0.60) / 1e6 = (0.6 + 0.3 + 4.2) / 1e6
    Case("openai-reasoning", "openai/o4-mini",
         {(fake_openai, "CACHED_TOKENS"): 0, (fake_openai, "_usage"): openai_reasoning(3)},
         (8, 7, 0, 0, 3), 3.96e-05),  # (8 × 1.10 + 7 × 4.40) / 1e6 = (8.8 + 30.8) / 1e6; the 3 are inside the 7
    # ---- Anthropic messages → anthropic
    Case("anthropic-plain", "anthropic/claude-sonnet-4-5",
         {(fake_anthropic, "CACHED_TOKENS"): 0, (fake_anthropic, "CACHE_WRITE_TOKENS"): 0},
         (8, 7, 0, 0, 0), 1.29e-04, "anthropic"),  # (8 × 3 + 7 × 15) / 1e6 = (24 + 105) / 1e6
    Case("anthropic-cache-read", "anthropic/claude-sonnet-4-5",
         {(fake_anthropic, "CACHED_TOKENS"): 4, (fake_anthropic, "CACHE_WRITE_TOKENS"): 0},
         (8, 7, 4, 0, 0), 1.182e-04, "anthropic"),  # (4 × 3 + 4 × 0.30 + 7 × 15) / 1e6 = (12 + 1.2 + 105) / 1e6
    Case("anthropic-cache-write", "anthropic/claude-sonnet-4-5",
         {(fake_anthropic, "CACHED_TOKENS"): 0, (fake_anthropic, "CACHE_WRITE_TOKENS"): 2},
         (8, 7, 0, 2, 0), 1.305e-04, "anthropic"),  # (6 × 3 + 2 × 3.75 + 7 × 15) / 1e6 = (18 + 7.5 + 105) / 1e6
    Case("anthropic-cache-read-and-write", "anthropic/claude-sonnet-4-5",
         {(fake_anthropic, "CACHED_TOKENS"): 4, (fake_anthropic, "CACHE_WRITE_TOKENS"): 2},
         (8, 7, 4, 2, 0), 1.197e-04, "anthropic"),  # (2 × 3 + 4 × 0.30 + 2 × 3.75 + 7 × 15) / 1e6 = 119.7 / 1e6
    # ---- Gemini generateContent → gemini
    Case("gemini-plain", "gemini/gemini-2.5-flash",
         {(fake_gemini, "CACHED_TOKENS"): 0, (fake_gemini, "THOUGHTS_TOKENS"): 0},
         (8, 7, 0, 0, 0), 1.99e-05, "gemini"),  # (8 × 0.30 + 7 × 2.50) / 1e6 = (2.4 + 17.5) / 1e6
    Case("gemini-cache-read", "gemini/gemini-2.5-flash",
         {(fake_gemini, "CACHED_TOKENS"): 4, (fake_gemini, "THOUGHTS_TOKENS"): 0},
         (8, 7, 4, 0, 0), 1.882e-05, "gemini"),  # (4 × 0.30 + 4 × 0.03 + 7 × 2.50) / 1e6 = (1.2 + 0.12 + 17.5) / 1e6
    Case("gemini-thinking", "gemini/gemini-2.5-flash",
         {(fake_gemini, "CACHED_TOKENS"): 0, (fake_gemini, "THOUGHTS_TOKENS"): 5},
         (8, 12, 0, 0, 5), 3.24e-05, "gemini"),  # (8 × 0.30 + (7 + 5) × 2.50) / 1e6 = (2.4 + 30) / 1e6
    # ---- OpenAI chat → groq (an OpenAI-compatible preset)
    Case("groq-plain", "groq/llama-3.3-70b-versatile", {(fake_openai, "CACHED_TOKENS"): 0},
         (8, 7, 0, 0, 0), 1.025e-05),  # (8 × 0.59 + 7 × 0.79) / 1e6 = (4.72 + 5.53) / 1e6
    Case("groq-cache-read-at-input-rate", "groq/llama-3.3-70b-versatile", {(fake_openai, "CACHED_TOKENS"): 4},
         (8, 7, 4, 0, 0), 1.025e-05),  # no cache price: (4 × 0.59 + 4 × 0.59 + 7 × 0.79) / 1e6, as plain
    Case("groq-reasoning", "groq/qwen/qwen3-32b",
         {(fake_openai, "CACHED_TOKENS"): 0, (fake_openai, "_usage"): openai_reasoning(3)},
         (8, 7, 0, 0, 3), 6.45e-06),  # (8 × 0.29 + 7 × 0.59) / 1e6 = (2.32 + 4.13) / 1e6
]


@pytest.fixture
async def sc(upstreams: Upstreams, tmp_path: Path) -> AsyncIterator[Sidecar]:
    """The three fakes plus an OpenAI-format fake standing in for Groq, and an alias that fails over."""
    groq = FakeUpstream("openai", name="groq", expect_key=GROQ_KEY)
    await groq.start()
    config = config_for(upstreams, tmp_path / "data", {
        "providers": {"groq": {"base_url": groq.base_url}},
        "models": {"smart": {"targets": ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]}}})
    sidecar, runner = await start_sidecar(config, MemoryKeyStore({**KEYS, "groq": GROQ_KEY}))
    yield sidecar
    await runner.cleanup()  # type: ignore[attr-defined]
    await groq.close()


async def send(sc: Sidecar, inbound: str, model: str, stream: bool) -> bytes:
    """One "hi" request in the client format ``inbound``; the reply body (whole stream included)."""
    msgs = [{"role": "user", "content": "hi"}]
    if inbound == "openai_chat":
        url, body = "/v1/chat/completions", {"model": model, "messages": msgs, "stream": stream}
    elif inbound == "anthropic":
        url, body = "/v1/messages", {"model": model, "max_tokens": 64, "messages": msgs, "stream": stream}
    else:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url, body = f"/v1beta/models/{model.split('/', 1)[1]}:{method}", {"contents": [{"role": "user",
                                                                                          "parts": [{"text": "hi"}]}]}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        async with http.post(sc.url + url, data=orjson.dumps(body), headers={"content-type": "application/json"}) as r:
            data = await r.read()
            assert r.status == 200, data
            return data


async def last_record(sc: Sidecar) -> dict[str, Any]:
    await sc.store.flush()
    [rec] = sc.store.recent(1)
    return rec


def assert_priced(rec: dict[str, Any], tokens: tuple[int, int, int, int, int], usd: float) -> None:
    got = tuple(rec[f"{k}_tokens"] for k in ("input", "output", "cache_read", "cache_write", "reasoning"))
    assert got == tokens
    assert rec["usage_source"] == "reported"
    assert rec["cost_usd"] == pytest.approx(usd, rel=1e-9, abs=0)
    breakdown = rec["cost_breakdown"]
    assert breakdown["total_usd"] == pytest.approx(usd, rel=1e-9, abs=0)
    assert sum(m["usd"] for m in breakdown["meters"]) == pytest.approx(usd, rel=1e-6, abs=0)
    assert sum(m["tokens"] for m in breakdown["meters"]) == tokens[0] + tokens[1]  # reasoning never counted twice


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_recorded_usage_and_cost(sc: Sidecar, monkeypatch: pytest.MonkeyPatch, case: Case,
                                       stream: bool) -> None:
    for (module, name), value in case.knobs.items():
        monkeypatch.setattr(module, name, value)
    await send(sc, case.inbound, case.model, stream)
    rec = await last_record(sc)
    provider, model = case.model.split("/", 1)
    assert (rec["provider"], rec["model"], rec["inbound"], rec["stream"]) == (provider, model, case.inbound, stream)
    assert_priced(rec, case.tokens, case.usd)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_translated_openai_sdk_to_anthropic(sc: Sidecar, stream: bool) -> None:
    """The OpenAI SDK asks for a Claude model: the sidecar meters Anthropic's usage (the fake's defaults: 4 tokens
    read from cache, 2 written) at Anthropic's prices, and the SDK sees the same counts in OpenAI's shape."""
    import openai

    client = openai.AsyncOpenAI(base_url=f"{sc.url}/v1", api_key="placeholder", max_retries=0)
    msgs: Any = [{"role": "user", "content": "hi"}]
    if stream:
        chunks = [c async for c in await client.chat.completions.create(
            model="anthropic/claude-sonnet-4-5", messages=msgs, stream=True, stream_options={"include_usage": True})]
        usage = chunks[-1].usage
    else:
        usage = (await client.chat.completions.create(model="anthropic/claude-sonnet-4-5", messages=msgs)).usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (8, 7)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 4
    rec = await last_record(sc)
    assert (rec["inbound"], rec["provider"], rec["model"]) == ("openai_chat", "anthropic", "claude-sonnet-4-5")
    # (2 × 3 + 4 × 0.30 + 2 × 3.75 + 7 × 15) / 1e6 = (6 + 1.2 + 7.5 + 105) / 1e6
    assert_priced(rec, (8, 7, 4, 2, 0), 1.197e-04)


FAILED_WITH_USAGE = orjson.dumps({"error": {"message": "upstream overloaded", "type": "server_error"},
                                  "usage": {"prompt_tokens": 100000, "completion_tokens": 100000}})


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("failure", ["bare-503", "503-claiming-usage"])
async def test_failed_over_request_prices_only_the_answer_served(sc: Sidecar, upstreams: Upstreams, stream: bool,
                                                                 failure: str) -> None:
    """openai answers 503 (without usage, or with a body that claims 200k tokens: a failed call is not billed, so
    that claim must not be metered), then anthropic answers: tokens and dollars are anthropic's alone."""
    upstreams.openai.fail_next(503, body=FAILED_WITH_USAGE if failure == "503-claiming-usage" else None)
    await send(sc, "openai_chat", "smart", stream)
    rec = await last_record(sc)
    assert [(a["provider"], a["status"]) for a in rec["attempts"]] == [("openai", 503), ("anthropic", 200)]
    assert (rec["provider"], rec["model"]) == ("anthropic", "claude-sonnet-4-5")
    # (2 × 3 + 4 × 0.30 + 2 × 3.75 + 7 × 15) / 1e6: the fake anthropic's default usage, nothing from openai
    assert_priced(rec, (8, 7, 4, 2, 0), 1.197e-04)
