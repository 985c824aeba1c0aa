"""``sidecar demo``: the whole path, with no keys and no network.

Starts simulated OpenAI, Anthropic and Gemini providers (the same fakes the tests use) on 127.0.0.1,
a real sidecar in front of them with demo keys held in memory only (the OS keyring is not touched),
and sends sample traffic through it in every inbound format, streamed and not, including a failover
and an error. Each request is printed as it completes and recorded in a separate demo store, so the
user's real spend history stays clean.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import replace
from typing import Any

import aiohttp
import orjson

from sidecar.app import build_app
from sidecar.config import Config, ModelAlias
from sidecar.events import EventBus
from sidecar.fake_upstream import FakeUpstream
from sidecar.keys import MemoryKeyStore
from sidecar.server import start_server, wait_for_signal
from sidecar.store import RequestStore
from sidecar.util import utc_now_iso

DEMO_KEYS = {"openai": "demo-openai-key", "anthropic": "demo-anthropic-key", "gemini": "demo-gemini-key",
             "groq": "demo-groq-key"}
SIMULATED = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "groq": "openai"}
"""Provider id → the wire format its simulation speaks (groq is one of the OpenAI-compatible presets)."""

SAMPLES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}),
    ("POST", "/v1/messages", {"model": "anthropic/claude-haiku-4-5", "max_tokens": 200, "stream": True,
                              "messages": [{"role": "user", "content": "Stream a haiku"}]}),
    ("POST", "/v1beta/models/gemini-2.5-flash:generateContent", {"contents": [{"role": "user", "parts": [{"text": "Hi Gemini"}]}]}),
    # Any format in, any provider out: the OpenAI API served by Claude, the Anthropic API by GPT, Gemini's by Claude.
    ("POST", "/v1/chat/completions", {"model": "anthropic/claude-haiku-4-5", "stream": True,
                                      "messages": [{"role": "user", "content": "Claude through the OpenAI API"}]}),
    ("POST", "/v1/messages", {"model": "openai/gpt-4o", "max_tokens": 200,
                              "messages": [{"role": "user", "content": "GPT through the Anthropic API"}]}),
    ("POST", "/v1beta/models/anthropic/claude-sonnet-4-5:streamGenerateContent?alt=sse",
     {"contents": [{"role": "user", "parts": [{"text": "Claude through the Gemini API"}]}]}),
    ("POST", "/v1/responses", {"model": "gemini/gemini-2.5-flash", "input": "Gemini through the Responses API"}),
    ("POST", "/v1/chat/completions", {"model": "smart", "messages": [{"role": "user", "content": "Fail over, please"}]}),
    ("POST", "/v1/chat/completions", {"model": "groq/llama-3.3-70b-versatile", "stream": True, "tools": [
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}],
        "messages": [{"role": "user", "content": "What's the weather in Paris?"}]}),
    ("POST", "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 200,
                              "messages": [{"role": "user", "content": "A bare model name routes by catalog"}]}),
    ("POST", "/v1/chat/completions", {"model": "mystery-model-9", "messages": [{"role": "user", "content": "x"}]}),
]


async def run_demo(config: Config, *, requests: int = 14, stay_up: bool = True) -> int:
    fakes = {pid: FakeUpstream(kind, name=f"{pid}-sim", expect_key=DEMO_KEYS[pid], chunk_delay=0.03)
             for pid, kind in SIMULATED.items()}
    for fake in fakes.values():
        await fake.start()
    providers = dict(config.providers)
    for pid, fake in fakes.items():
        providers[pid] = replace(providers[pid], base_url=fake.base_url)
    demo_config = replace(
        config, providers=providers, data_dir=config.data_dir / "demo",
        models={**config.models, "smart": ModelAlias("smart", ("openai/gpt-4o", "anthropic/claude-sonnet-4-5"))},
    )
    for name in ("sidecar.proxy", "sidecar.store"):
        logging.getLogger(name).setLevel(logging.WARNING)  # the table below says it all
    bus = EventBus()
    store = RequestStore(demo_config.db_path, body_cap=demo_config.body_cap_bytes)
    app = build_app(demo_config, keys=MemoryKeyStore(DEMO_KEYS), store=store, bus=bus)
    try:
        runner, url = await start_server(app, demo_config.host, demo_config.port)
    except OSError:
        runner, url = await start_server(app, demo_config.host, 0)  # 8787 is taken, e.g. by a real sidecar
    try:
        _say(f"llm-sidecar demo: proxy on {url}, simulated providers on "
             + ", ".join(f"{k} {f.base_url}" for k, f in fakes.items()))
        _say(f"recording to {demo_config.db_path}\n")
        _say(f"{'INBOUND':<17} {'REQUESTED':<28} {'SERVED BY':<30} {'STATUS':>6} {'TTFT':>7} "
             f"{'TOTAL':>7} {'IN':>5} {'OUT':>5} {'COST':>10}  NOTE")
        started = utc_now_iso()
        printer = asyncio.get_running_loop().create_task(_print_finished(bus))
        await _send_traffic(url, fakes["openai"], requests)
        await asyncio.sleep(0.05)
        printer.cancel()
        await store.flush()
        stats = await asyncio.to_thread(store.stats, started)
        totals = stats["totals"]
        _say(f"\n{totals['requests']} requests ({totals['errors']} answered with an error), "
             f"{totals['input_tokens']} tokens in, {totals['output_tokens']} out, "
             f"${totals['cost_usd'] or 0:.6f} at list prices")
        if stay_up:
            _say(f"\nThe proxy stays up on {url} (Ctrl-C to stop). Try:\n"
                 f"  curl -s {url}/v1/chat/completions -H 'content-type: application/json' \\\n"
                 f"    -d '{{\"model\":\"openai/gpt-4o-mini\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'\n"
                 f"  curl -s {url}/_sidecar/requests?limit=3")
            await wait_for_signal()
    finally:
        await runner.cleanup()
        for fake in fakes.values():
            await fake.close()
    return 0


async def _send_traffic(url: str, openai_fake: FakeUpstream, count: int) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer placeholder", "x-api-key": "placeholder",
                                              "anthropic-version": "2023-06-01", "User-Agent": "sidecar-demo"}) as http:
        for i in range(count):
            method, path, body = SAMPLES[i % len(SAMPLES)]
            if body.get("model") == "smart":
                openai_fake.fail_next(503)  # the alias's first target is "down": watch it fail over
            async with http.request(method, url + path, data=orjson.dumps(body)) as resp:
                await resp.read()


async def _print_finished(bus: EventBus) -> None:
    sub = bus.subscribe()
    try:
        while True:
            event = await sub.get()
            if event.type == "request_finished":
                _say(_row(event.data))
    finally:
        bus.unsubscribe(sub)


def _row(r: dict[str, Any]) -> str:
    served = f"{r['provider']}/{r['model']}" if r["provider"] else "-"
    ttft = f"{r['ttft_ms']:.0f}ms" if r["ttft_ms"] is not None else "-"
    cost = f"${r['cost_usd']:.6f}" if r["cost_usd"] is not None else "?"
    note = ""
    if len(r["attempts"]) > 1:
        note = "failed over: " + " → ".join(f"{a['provider']} {a['status'] or 'x'}" for a in r["attempts"])
    elif r["error"]:
        note = r["error"][:70]
    return (f"{r['inbound']:<17} {r['requested_model'][:28]:<28} {served[:30]:<30} {r['status'] or '-':>6} {ttft:>7} "
            f"{r['latency_ms']:>5.0f}ms {r['input_tokens'] or '-':>5} {r['output_tokens'] or '-':>5} {cost:>10}  {note}")


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
