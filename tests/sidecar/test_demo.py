"""`sidecar demo`: the stack (fakes + real sidecar), the traffic generator and the printed table.

The live stack runs with `latency=False` so a test sends a hundred requests in a couple of seconds;
everything else (faults, rate limits, aliases, budgets, client tokens) is what the demo uses.
"""

from __future__ import annotations

import asyncio
import io
import random
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from sidecar import demo
from sidecar.config import Config, config_from_dict
from sidecar.demo import ALIASES, DemoStack, run_demo, start_stack, traffic
from sidecar.demo_traffic import CLIENTS, RECIPES, TrafficGenerator, build_call

FORMATS = {"openai_chat", "openai_responses", "anthropic", "gemini"}


def base_config(tmp_path: Path) -> Config:
    return replace(config_from_dict({}), data_dir=tmp_path / "data", port=0)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[DemoStack]:
    s = await start_stack(base_config(tmp_path), live=True, seed=7, latency=False)
    yield s
    await s.close()


async def records(stack: DemoStack, limit: int = 500) -> list[dict]:
    await stack.store.flush()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.url}/_sidecar/requests?limit={limit}") as resp:
            assert resp.status == 200
            return (await resp.json())["requests"]


async def test_generator_covers_every_format_with_failovers_and_429s(stack: DemoStack) -> None:
    gen = TrafficGenerator(stack.url, tokens={c: stack.tokens[c] for c in CLIENTS}, seed=7, rate=0, concurrency=1)
    await gen.run(count=120)
    recs = await records(stack)
    assert len(recs) == 120 == sum(gen.statuses.values())
    assert {r["inbound"] for r in recs} == FORMATS
    assert {r["client"] for r in recs} == set(CLIENTS)  # each pretend client presents its own token
    assert any(r["stream"] for r in recs) and any(not r["stream"] for r in recs)
    failed_over = [r for r in recs if len(r["attempts"]) > 1 and r["status"] == 200]
    assert failed_over and all(r["requested_model"] in ALIASES for r in failed_over)
    assert any(a["status"] == 429 for r in recs for a in r["attempts"])
    direct = [r for r in recs if "/" in r["requested_model"] and r["status"] == 200]
    assert direct and all(r["provider"] == r["requested_model"].split("/")[0] for r in direct)
    assert all(f.received for f in stack.fakes.values())
    assert not any(f.rejected for f in stack.fakes.values())  # every generated body is one the real API accepts
    # Every error is one the demo means to show: a simulated provider fault, a provider cooling down after a
    # 429's Retry-After (at this test's speed a 1 s cool-down covers many requests), or the unknown model.
    for r in recs:
        if r["status"] != 200:
            assert "answered" in r["error"] or "cooling down" in r["error"] or "mystery-model" in r["error"], r


async def test_tool_calls_and_translation_happen(stack: DemoStack) -> None:
    gen = TrafficGenerator(stack.url, tokens={c: stack.tokens[c] for c in CLIENTS}, seed=11, rate=0, concurrency=2)
    await gen.run(count=80)
    recs = await records(stack)
    translated = {(r["inbound"], r["provider"]) for r in recs if r["status"] == 200}
    assert ("openai_chat", "anthropic") in translated and ("anthropic", "openai") in translated
    tool_fakes = [f for f in stack.fakes.values() for req in f.received if (req.json or {}).get("tools")]
    assert tool_fakes  # tool definitions reached a provider


def test_recipes_build_valid_requests_for_their_format() -> None:
    rng = random.Random(0)
    for recipe in RECIPES:
        for _ in range(5):
            c = build_call(recipe, rng)
            assert c.inbound == recipe.inbound and c.client == recipe.client
            if c.inbound == "gemini":
                assert c.path.startswith("/v1beta/models/") and "contents" in c.body
            else:
                assert c.body["model"] in recipe.models


async def test_traffic_context_stops_the_generator(stack: DemoStack) -> None:
    async with traffic(stack, rate=50, seed=1, concurrency=2) as gen:
        for _ in range(200):
            if gen.sent >= 5:
                break
            await asyncio.sleep(0.02)
    sent = gen.sent
    assert sent >= 5
    await asyncio.sleep(0.1)
    assert gen.sent == sent  # nothing is sent after the block


async def test_demo_budgets_show_in_the_control_api(stack: DemoStack) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {stack.tokens['tui']}"}) as http:
        async with http.get(f"{stack.url}/_sidecar/budgets") as resp:
            body = await resp.json()
    assert body["mode"] == "warn"  # the demo never blocks itself
    scopes = {(b["scope"], b["period"]) for b in body["budgets"]}
    assert ("global", "daily") in scopes and ("provider anthropic", "daily") in scopes
    assert stack.config.data_dir.name == "demo" and stack.config.otel is None


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_the_live_tui_opens_only_in_a_terminal_and_without_exit(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    lives: list[float] = []

    async def live(config: Config, *, rate: float, seed: int | None) -> int:
        lives.append(rate)
        return 0

    monkeypatch.setattr(demo, "_run_live", live)
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert await run_demo(base_config(tmp_path), stay_up=True, rate=3.0) == 0
    assert lives == [3.0]
    assert await run_demo(base_config(tmp_path), requests=1, stay_up=False) == 0  # --exit: printed, even in a terminal
    assert lives == [3.0] and "openai_chat" in sys.stdout.getvalue()


async def test_printed_demo_prints_a_row_per_request_and_exits(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # stay_up=False is `--exit`: the printed table, never the TUI.
    assert await run_demo(base_config(tmp_path), requests=11, stay_up=False) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.split(" ", 1)[0] in FORMATS]
    assert len(rows) == 11
    assert "failed over: openai 503 → anthropic 200" in out
    assert "11 requests (1 answered with an error)" in out
    assert (tmp_path / "data" / "demo" / "requests.db").exists()


async def test_a_taken_port_falls_back_to_a_free_one(tmp_path: Path) -> None:
    # e.g. a real sidecar already on 8787: the demo still starts, with a working store.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = await start_stack(replace(base_config(tmp_path), port=port), live=False, latency=False)
        try:
            assert not s.url.endswith(f":{port}")
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{s.url}/v1/chat/completions", json={
                        "model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}) as resp:
                    assert resp.status == 200
            assert len(await records(s)) == 1
        finally:
            await s.close()
