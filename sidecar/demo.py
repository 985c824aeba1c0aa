"""``sidecar demo``: the whole path, with no keys and no network.

Starts simulated OpenAI, Anthropic, Gemini and Groq providers (the same fakes the tests use) on
127.0.0.1, and a real sidecar in front of them with demo keys held in memory only (the OS keyring
is not touched), recording to a separate demo store so the user's real spend history stays clean.

In a terminal, the demo is live: the fakes answer with realistic latency, rate-limit headers and the
odd 429 or 5xx, a traffic generator (`demo_traffic`) plays a few clients, and the TUI opens on it in
the same process, so every view fills within seconds; quitting the TUI stops everything. Without a
terminal, or with ``--exit``, it sends a fixed list of samples and prints one line per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from sidecar.app import ACCESS, build_app
from sidecar.config import Budgets, Config, Limits, ModelAlias
from sidecar.demo_traffic import CLIENTS, TrafficGenerator
from sidecar.events import EventBus
from sidecar.fake_upstream import FakeUpstream
from sidecar.fakes.realism import LatencyProfile, RateLimits
from sidecar.keys import MemoryKeyStore
from sidecar.server import start_server, wait_for_signal
from sidecar.store import RequestStore
from sidecar.util import spawn, utc_now_iso

DEMO_KEYS = {"openai": "demo-openai-key", "anthropic": "demo-anthropic-key", "gemini": "demo-gemini-key",
             "groq": "demo-groq-key"}
SIMULATED = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "groq": "openai"}
"""Provider id → the wire format its simulation speaks (groq is one of the OpenAI-compatible presets)."""


@dataclass(frozen=True, slots=True)
class Simulation:
    """How one simulated provider behaves in the live demo."""

    latency: LatencyProfile
    fault_rate: float
    """Share of requests answered with a random 429 / 5xx: OpenAI and Groq first in the aliases, and
    flakiest, so failover shows every few seconds at the default rate."""
    rpm: int
    tpm: int
    faults: dict[int, float] | None = None
    """Status → weight of those faults; None keeps the provider's own mix. Mostly 5xx: a 429's
    Retry-After cools the provider down, and direct requests to it then fail fast for a second."""


LIVE: dict[str, Simulation] = {
    "openai": Simulation(LatencyProfile(0.55, 0.028), 0.12, 500, 200_000, {429: 1, 500: 1, 503: 2}),
    "anthropic": Simulation(LatencyProfile(0.8, 0.035, spread=0.6), 0.05, 1000, 400_000, {429: 1, 500: 1, 529: 3}),
    "gemini": Simulation(LatencyProfile(0.45, 0.02), 0.04, 1000, 1_000_000, {429: 1, 500: 1, 503: 2}),
    "groq": Simulation(LatencyProfile(0.15, 0.006, spread=0.4), 0.1, 30, 6000),  # Groq's free tier: 30 RPM
}
SAMPLE_LATENCY = LatencyProfile(0.06, 0.005, spread=0.3)
"""The printed demo's pace: quick enough that `sidecar demo --exit` is done in a few seconds."""

ALIASES = {
    "smart": ModelAlias("smart", ("openai/gpt-4o", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-pro")),
    "fast": ModelAlias("fast", ("groq/llama-3.3-70b-versatile", "openai/gpt-4o-mini", "gemini/gemini-2.5-flash")),
}
BUDGETS = Budgets("warn", Limits(daily_usd=0.25, monthly_usd=5.0), providers={"anthropic": Limits(daily_usd=0.1)},
                  clients={"claude-code": Limits(daily_usd=0.05)})
"""Warn mode (never blocks the demo) with caps small enough that the Spend view's bars visibly move: at
the default 2 requests/s the demo spends about $0.04 a minute at list prices, so the first cap is
reached after a few minutes (the daily ones start again each UTC day; the demo's history persists)."""
TUI_CLIENT = "tui"

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


@dataclass
class DemoStack:
    """The running demo: simulated providers, the sidecar app in front of them, its store and bus."""

    config: Config
    fakes: dict[str, FakeUpstream]
    store: RequestStore
    bus: EventBus
    app: web.Application
    runner: web.AppRunner
    url: str
    tokens: dict[str, str]
    """Client name → a client token known only to this process (the demo clients' and the TUI's)."""

    async def close(self) -> None:
        await self.runner.cleanup()  # flushes the store
        for fake in self.fakes.values():
            await fake.close()


def make_fakes(*, live: bool, seed: int | None = None, latency: bool = True) -> dict[str, FakeUpstream]:
    """One fake per simulated provider. `live` adds random faults; `latency=False` answers at once
    (tests); `seed` makes every fake's draws repeatable."""
    fakes = {}
    for i, (pid, kind) in enumerate(SIMULATED.items()):
        sim = LIVE[pid]
        profile = (sim.latency if live else SAMPLE_LATENCY) if latency else None
        fakes[pid] = FakeUpstream(kind, name=f"{pid}-sim", expect_key=DEMO_KEYS[pid], latency=profile, prose=True,
                                  rate_limits=RateLimits(sim.rpm, sim.tpm), fault_rate=sim.fault_rate if live else 0.0,
                                  seed=None if seed is None else seed * 100 + i)
        if live and sim.faults:
            fakes[pid].fault_mix = dict(sim.faults)
    return fakes


def demo_config(config: Config, fakes: dict[str, FakeUpstream]) -> Config:
    """The user's config pointed at the fakes, with the demo's aliases and budgets and its own data dir."""
    providers = dict(config.providers)
    for pid, fake in fakes.items():
        providers[pid] = replace(providers[pid], base_url=fake.base_url)
    return replace(config, providers=providers, data_dir=demo_data_dir(config), models={**config.models, **ALIASES},
                   budgets=BUDGETS, otel=None)


def demo_data_dir(config: Config) -> Path:
    """The demo records beside the real store, never in it: simulated spend must not count against real budgets."""
    return config.data_dir / "demo"


async def start_stack(config: Config, *, live: bool, seed: int | None = None, latency: bool = True,
                      port: int | None = None) -> DemoStack:
    """Start the fakes and a sidecar in front of them (on `port`, default the config's; a taken port
    falls back to any free one, e.g. when a real sidecar already runs on 8787)."""
    fakes = make_fakes(live=live, seed=seed, latency=latency)
    for fake in fakes.values():
        await fake.start()
    try:
        cfg = demo_config(config, fakes)
        bus, store, app, tokens = _sidecar(cfg)
        try:
            runner, url = await start_server(app, cfg.host, cfg.port if port is None else port)
        except OSError:
            # The failed start already ran the app's startup and cleanup (its store is closed): start afresh.
            bus, store, app, tokens = _sidecar(cfg)
            runner, url = await start_server(app, cfg.host, 0)
    except BaseException:
        for fake in fakes.values():
            await fake.close()
        raise
    return DemoStack(cfg, fakes, store, bus, app, runner, url, tokens)


def _sidecar(cfg: Config) -> tuple[EventBus, RequestStore, web.Application, dict[str, str]]:
    """A sidecar app with demo keys in memory and a client token per pretend client (and the TUI)."""
    bus = EventBus()
    store = RequestStore(cfg.db_path, body_cap=cfg.body_cap_bytes)
    app = build_app(cfg, keys=MemoryKeyStore(DEMO_KEYS), store=store, bus=bus)
    tokens = {name: "sct_" + secrets.token_urlsafe(24) for name in (*CLIENTS, TUI_CLIENT)}
    for name, token in tokens.items():
        app[ACCESS].internal_tokens[token] = name
    return bus, store, app, tokens


@contextlib.asynccontextmanager
async def traffic(stack: DemoStack, *, rate: float = 2.0, seed: int | None = None,
                  concurrency: int = 6) -> AsyncIterator[TrafficGenerator]:
    """Run the traffic generator against the stack for the duration of the block."""
    clients = {name: stack.tokens[name] for name in CLIENTS}
    generator = TrafficGenerator(stack.url, tokens=clients, seed=seed, rate=rate, concurrency=concurrency)
    task = spawn(generator.run(), name="demo-traffic")
    try:
        yield generator
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.contextmanager
def tui_token(stack: DemoStack) -> Iterator[str]:
    """``SIDECAR_TOKEN`` set to the TUI's token while the block runs, as `sidecar up` does: the demo
    works even when the user's config says ``require_token``."""
    token = stack.tokens[TUI_CLIENT]
    previous = os.environ.get("SIDECAR_TOKEN")
    os.environ["SIDECAR_TOKEN"] = token
    try:
        yield token
    finally:
        if previous is None:
            os.environ.pop("SIDECAR_TOKEN", None)
        else:
            os.environ["SIDECAR_TOKEN"] = previous


async def run_demo(config: Config, *, requests: int = 14, stay_up: bool = True, live: bool | None = None,
                   rate: float = 2.0, seed: int | None = None) -> int:
    """The ``sidecar demo`` command. `live` (default: stdout is a terminal and `stay_up`) opens the
    TUI over generated traffic; otherwise the samples are printed as a table."""
    if live is None:
        live = stay_up and sys.stdout.isatty()
    if live:
        return await _run_live(config, rate=rate, seed=seed)
    return await _run_printed(config, requests=requests, stay_up=stay_up)


async def _run_live(config: Config, *, rate: float, seed: int | None) -> int:
    from tui.app import SidecarApp  # loaded only here: the printed demo needs no UI

    # Before anything logs: log lines on the terminal would scribble over the UI.
    _log_to_file(replace(config, data_dir=demo_data_dir(config)))
    stack = await start_stack(config, live=True, seed=seed)
    try:
        with tui_token(stack):
            async with traffic(stack, rate=rate, seed=seed):
                await SidecarApp(stack.url, keymap=config.tui_keymap).run_async()
    finally:
        await stack.close()
    print(f"demo stopped; its requests are kept in {stack.config.db_path}")
    return 0


def _log_to_file(config: Config) -> None:
    from sidecar.cli import _log_to_file as log_to_file  # the CLI owns the process's logging setup

    log_to_file(config)


async def _run_printed(config: Config, *, requests: int, stay_up: bool) -> int:
    quiet = [logging.getLogger(name) for name in ("sidecar.proxy", "sidecar.store")]
    saved = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)  # the table below says it all (restored after: callers may be tests)
    stack = await start_stack(config, live=False)
    url, fakes = stack.url, stack.fakes
    try:
        _say(f"llm-sidecar demo: proxy on {url}, simulated providers on "
             + ", ".join(f"{k} {f.base_url}" for k, f in fakes.items()))
        _say(f"recording to {stack.config.db_path}\n")
        _say(f"{'INBOUND':<17} {'REQUESTED':<28} {'SERVED BY':<30} {'STATUS':>6} {'TTFT':>7} "
             f"{'TOTAL':>7} {'IN':>5} {'OUT':>5} {'COST':>10}  NOTE")
        started = utc_now_iso()
        printer = spawn(_print_finished(stack.bus), name="demo-printer")
        await _send_samples(url, fakes["openai"], requests, stack.tokens["notebook"])
        await asyncio.sleep(0.05)
        printer.cancel()
        await stack.store.flush()
        stats = await asyncio.to_thread(stack.store.stats, started)
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
        await stack.close()
        for logger, level in zip(quiet, saved):
            logger.setLevel(level)
    return 0


async def _send_samples(url: str, openai_fake: FakeUpstream, count: int, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "x-api-key": token, "anthropic-version": "2023-06-01",
               "User-Agent": "sidecar-demo"}
    async with aiohttp.ClientSession(headers=headers) as http:
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
