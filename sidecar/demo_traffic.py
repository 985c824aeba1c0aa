"""The demo's traffic generator: a few pretend clients talking to the sidecar the way real ones do.

Why: an empty traffic view teaches nothing. A newcomer running `sidecar demo` should see, within
seconds, every inbound format (OpenAI Chat, OpenAI Responses, Anthropic Messages, Gemini), streamed
and not, answers translated across providers, tool calls, aliases failing over, the odd error, and
several clients, so the filters, the detail view and the spend view all have something to show.

Requests arrive as a Poisson process (random gaps around `rate` per second, as independent users
make them) with at most `concurrency` in flight. Every choice comes from one seeded
`random.Random`, so a fixed seed gives the same sequence of requests.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from sidecar.util import spawn

CLIENTS = ("claude-code", "codex", "gemini-cli", "notebook")
"""The pretend clients; each gets its own client token, so records and budgets show them by name."""

PROMPTS = (
    "Hello! What can you do?",
    "Write a haiku about rate limits",
    "Explain what time to first token means",
    "Why is my Python test flaky when it depends on the clock?",
    "Summarise the design doc in three key points",
    "Suggest names for a local LLM proxy",
    "Translate 'the model answers in under a second' into French",
    "What is the difference between streaming and non-streaming responses?",
    "Refactor this function so it is pure: def f(x): return x + time.time()",
    "Give me ideas for a weekly spend report",
    "How do circuit breakers work?",
    "Recap yesterday's incident in two sentences",
    "What's a good regex for ISO dates?",
    "Is it worth caching the system prompt?",
    "Which model should I use for classification?",
    "Write a SQL query for the ten slowest requests today",
)
TOOL_PROMPTS = ("What's the weather in Paris?", "Check the weather in Lyon for tomorrow", "Is it sunny? Weather please")
SYSTEMS = ("You are a concise assistant.", "You are a senior engineer reviewing code.",
           "Answer in plain English for a busy reader.")
WEATHER_TOOL = {"name": "get_weather", "description": "Current weather for a city",
                "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@dataclass(frozen=True, slots=True)
class Recipe:
    """One kind of request a pretend client makes."""

    inbound: str
    """openai_chat | openai_responses | anthropic | gemini"""
    client: str
    models: tuple[str, ...]
    weight: float
    stream: float
    """Chance that a request of this kind streams."""
    tools: bool = False


RECIPES: tuple[Recipe, ...] = (
    Recipe("openai_chat", "notebook", ("openai/gpt-4o-mini", "gpt-4o-mini", "openai/gpt-4o"), 3, 0.6),
    Recipe("openai_chat", "notebook", ("anthropic/claude-haiku-4-5",), 2, 0.7),
    Recipe("openai_chat", "notebook", ("smart",), 3, 0.5),
    Recipe("openai_chat", "notebook", ("fast",), 3, 0.8),
    Recipe("openai_chat", "notebook", ("groq/llama-3.3-70b-versatile", "fast"), 1, 0.5, tools=True),
    Recipe("anthropic", "claude-code", ("anthropic/claude-sonnet-4-5", "claude-haiku-4-5"), 3, 0.8),
    Recipe("anthropic", "claude-code", ("smart",), 3, 0.9),
    Recipe("anthropic", "claude-code", ("openai/gpt-4o",), 1, 0.5),
    Recipe("anthropic", "claude-code", ("claude-sonnet-4-5",), 1, 0.8, tools=True),
    Recipe("gemini", "gemini-cli", ("gemini-2.5-flash", "gemini-2.5-pro"), 2, 0.5),
    Recipe("gemini", "gemini-cli", ("anthropic/claude-haiku-4-5", "smart"), 1, 0.5),
    Recipe("openai_responses", "codex", ("openai/gpt-4o-mini", "openai/gpt-4o"), 2, 0.6),
    Recipe("openai_responses", "codex", ("gemini/gemini-2.5-flash", "smart"), 1, 0.5),
    Recipe("openai_chat", "notebook", ("mystery-model-9",), 0.15, 0.0),  # unknown model: an error row
)


@dataclass(frozen=True, slots=True)
class Call:
    """One request ready to send."""

    inbound: str
    client: str
    path: str
    body: dict[str, Any]


def build_call(recipe: Recipe, rng: random.Random) -> Call:
    """A request body in the recipe's wire format, with a prompt, model and stream flag drawn from `rng`."""
    model = rng.choice(recipe.models)
    stream = rng.random() < recipe.stream
    prompt = rng.choice(TOOL_PROMPTS if recipe.tools else PROMPTS)
    system = rng.choice(SYSTEMS) if rng.random() < 0.4 else None
    fmt = recipe.inbound
    if fmt == "openai_chat":
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        if recipe.tools:
            body["tools"] = [{"type": "function", "function": {"name": WEATHER_TOOL["name"],
                              "description": WEATHER_TOOL["description"], "parameters": WEATHER_TOOL["schema"]}}]
        return Call(fmt, recipe.client, "/v1/chat/completions", body)
    if fmt == "openai_responses":
        body = {"model": model, "input": prompt, "stream": stream}
        if system:
            body["instructions"] = system
        return Call(fmt, recipe.client, "/v1/responses", body)
    if fmt == "anthropic":
        body = {"model": model, "max_tokens": rng.choice((512, 1024, 2048)), "stream": stream,
                "messages": [{"role": "user", "content": prompt}]}
        if system:
            body["system"] = system
        if recipe.tools:
            body["tools"] = [{"name": WEATHER_TOOL["name"], "description": WEATHER_TOOL["description"],
                              "input_schema": WEATHER_TOOL["schema"]}]
        return Call(fmt, recipe.client, "/v1/messages", body)
    if fmt == "gemini":
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        return Call(fmt, recipe.client, f"/v1beta/models/{model}:{method}", body)
    raise ValueError(f"unknown inbound format {fmt!r}")


def auth_headers(inbound: str, token: str | None) -> dict[str, str]:
    """Where each SDK puts its API key; the client token stands in for it, as with `sidecar exec`."""
    key = token or "placeholder"
    if inbound == "anthropic":
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}
    if inbound == "gemini":
        return {"x-goog-api-key": key}
    return {"Authorization": f"Bearer {key}"}


class TrafficGenerator:
    """Sends a seeded mix of requests to the sidecar at `url` until cancelled or `count` are done.

    Args:
        url: The sidecar's base URL.
        tokens: Client name → client token (the demo registers them in the app); a client without
            one sends a placeholder key and is labelled by its User-Agent.
        seed: Seeds every choice (recipe, model, prompt, stream, gaps).
        rate: Mean requests per second; 0 sends the next one as soon as a slot is free.
        concurrency: Most requests in flight at once.
    """

    def __init__(self, url: str, *, tokens: dict[str, str] | None = None, seed: int | None = None,
                 rate: float = 2.0, concurrency: int = 6) -> None:
        if rate < 0 or concurrency < 1:
            raise ValueError("rate must be >= 0 and concurrency >= 1")
        self.url = url.rstrip("/")
        self.tokens = dict(tokens or {})
        self.rng = random.Random(seed)
        self.rate = rate
        self.concurrency = concurrency
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        """HTTP status the sidecar answered → count (0 = the connection failed)."""
        self.inbound: Counter[str] = Counter()
        self._weights = [r.weight for r in RECIPES]

    def next_call(self) -> Call:
        return build_call(self.rng.choices(RECIPES, weights=self._weights)[0], self.rng)

    async def run(self, count: int | None = None) -> None:
        """Send until `count` requests have completed (None: until cancelled)."""
        slots = asyncio.Semaphore(self.concurrency)
        inflight: set[asyncio.Task[None]] = set()
        timeout = aiohttp.ClientTimeout(total=120, sock_connect=5)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            try:
                while count is None or self.sent < count:
                    await slots.acquire()
                    call = self.next_call()
                    self.sent += 1
                    task = spawn(self._send(http, call, slots), name=f"demo-request-{self.sent}")
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                    if self.rate:
                        await asyncio.sleep(self.rng.expovariate(self.rate))
                await asyncio.gather(*inflight)
            finally:
                for task in inflight:
                    task.cancel()
                await asyncio.gather(*inflight, return_exceptions=True)

    async def _send(self, http: aiohttp.ClientSession, call: Call, slots: asyncio.Semaphore) -> None:
        headers = {"content-type": "application/json", "user-agent": f"{call.client} (llm-sidecar demo)",
                   **auth_headers(call.inbound, self.tokens.get(call.client))}
        try:
            async with http.post(self.url + call.path, data=orjson.dumps(call.body), headers=headers) as resp:
                await resp.read()
                self.statuses[resp.status] += 1
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self.statuses[0] += 1  # the sidecar is shutting down, or a stream broke: the record says which
        finally:
            self.inbound[call.inbound] += 1
            slots.release()
