"""Fake upstream LLM providers (OpenAI, Anthropic, Gemini) served over real HTTP on localhost.

Why: the test suite and `sidecar demo` need upstreams that speak the real wire formats closely
enough that the official openai / anthropic / google-genai SDKs parse their answers when relayed
byte-for-byte through the proxy, plus knobs to inject the failures (status codes, hangs, broken
streams, wrong keys) that real providers produce only at random. This module holds the shared
machinery; `openai.py`, `anthropic.py` and `gemini.py` hold each provider's routes and shapes.
Import it as `sidecar.fake_upstream`.

Replies are deterministic. The text is
``"Hello from fake-<name> (<model>): you said <last user text, first 40 chars>"``, streamed as
one chunk per whitespace-separated word (each word keeps its trailing whitespace). When the
request defines tools, the conversation ends with a user turn (not a tool result) and that turn's
text contains the word "weather", the reply is instead a call to the first tool with arguments
``{"city":"Paris"}`` (finish reason tool_calls / tool_use / STOP; streamed argument JSON comes in
two fragments).

Usage formulas (all figures integers):

- ``words`` = number of whitespace-separated words in the request's text: system prompt /
  instructions / systemInstruction plus the text parts (or string content) of every turn that is
  not a tool result. Tool calls, tool results, images etc. count 0.
- ``P`` (total prompt tokens, cache included) = ``words + 7``;  ``C`` (cache read) = 4;
  ``W`` (cache write, Anthropic only, part of P) = 2;  ``T`` (Gemini thoughts) = 5.
- ``O`` (output tokens) = number of words of the reply text, or 10 for a tool call.
- OpenAI chat: ``prompt_tokens=P``, ``prompt_tokens_details.cached_tokens=C``,
  ``completion_tokens=O``, ``total_tokens=P+O`` (stream: only with include_usage).
- OpenAI Responses: ``input_tokens=P``, ``input_tokens_details.cached_tokens=C``,
  ``output_tokens=O``, ``total_tokens=P+O``.
- Anthropic: ``input_tokens=P-C-W`` (excludes cache), ``cache_read_input_tokens=C``,
  ``cache_creation_input_tokens=W``, ``output_tokens=O`` (``message_start`` says 1;
  ``message_delta`` carries the full usage with the cumulative O).
- Gemini: ``promptTokenCount=P`` (includes ``cachedContentTokenCount=C``),
  ``candidatesTokenCount=O`` (excludes ``thoughtsTokenCount=T``), ``totalTokenCount=P+O+T``;
  stream chunks carry cumulative figures, the last chunk the final ones.

``FakeUpstream.last_usage`` holds the raw usage object of the last reply that carried one.

Requests are validated like the real providers do (`validate_openai`, `validate_responses`,
`validate_anthropic`, `validate_gemini`): a body a real provider would refuse gets that provider's
400 (OpenAI ``invalid_request_error`` with ``param``, Anthropic ``invalid_request_error``, Gemini
``INVALID_ARGUMENT``), and its message is appended to ``FakeUpstream.rejected``. Set
``FakeUpstream.validate = False`` to accept anything that parses.

Realism, all off by default (see `realism.py`; `sidecar demo` turns them on): ``latency`` (a
`LatencyProfile`: log-normal time to first byte and between chunks; a non-streamed answer waits
about as long as its stream would take), ``prose=True`` (a few sentences on the prompt's topic from `prose.py`
instead of the echo; O is still its word count), ``rate_limits`` (a `RateLimits`: the provider's
rate-limit headers on every successful generation response and 429, remaining counting down, and a
429 when a bucket runs dry) and ``fault_rate`` (that share of generation requests answers a random
status from the provider's ``FAULTS`` mix: a 429 with Retry-After, or a 5xx/529). Random draws come
from ``FakeUpstream.rng``, seeded by ``seed``.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import math
import random
import re
import secrets
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from . import prose as _prose
from .checks import Invalid
from .realism import LatencyProfile, RateLimits, estimate_tokens, pick_fault

__all__ = ["FakeUpstream", "ReceivedRequest", "KINDS", "BASE_PROMPT_TOKENS", "CACHED_TOKENS",
           "CACHE_WRITE_TOKENS", "THOUGHTS_TOKENS", "TOOL_CALL_OUTPUT_TOKENS", "TOOL_ARGS"]

BASE_PROMPT_TOKENS = 7
CACHED_TOKENS = 4
CACHE_WRITE_TOKENS = 2
THOUGHTS_TOKENS = 5
TOOL_CALL_OUTPUT_TOKENS = 10
TOOL_ARGS: dict[str, Any] = {"city": "Paris"}
TOOL_ARGS_JSON = orjson.dumps(TOOL_ARGS).decode()
KINDS = ("openai", "anthropic", "gemini")
SSE = "text/event-stream; charset=utf-8"
_WEATHER = re.compile(r"\bweather\b", re.IGNORECASE)
_RequestKey = getattr(web, "RequestKey", None)  # aiohttp >= 3.13; plain strings before that
_RATE_HEADERS = _RequestKey("fake_rate_headers", dict) if _RequestKey else "fake_rate_headers"
"""``request[_RATE_HEADERS]``: the rate-limit headers admission computed for this request."""


@dataclass
class ReceivedRequest:
    """One request as the fake saw it, so tests can assert what the proxy actually sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when empty or not JSON."""
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None


Handler = Callable[["FakeUpstream", web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]
"""A provider endpoint: gets the fake, the request and its already-parsed JSON body (or {})."""


@dataclass
class Answer:
    """The deterministic reply to one generation request, with its usage figures."""

    model: str
    text: str
    pieces: list[str]
    """`text` split into stream chunks (one word plus its trailing whitespace each)."""
    tool: str | None
    """Name of the tool to call instead of answering with text."""
    prompt: int
    output: int


_ANSWER: contextvars.ContextVar[Answer | None] = contextvars.ContextVar("fake_answer", default=None)
"""The answer the current request's handler built; the endpoint wrapper reads it to time a non-streamed reply."""


def uid(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def texts(content: Any) -> list[str]:
    """Text of a content that is a string or a list of parts / blocks carrying a "text" field."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []


def split_args() -> list[str]:
    """Tool-call argument JSON in two fragments, so clients must really accumulate deltas."""
    half = len(TOOL_ARGS_JSON) // 2
    return [TOOL_ARGS_JSON[:half], TOOL_ARGS_JSON[half:]]


def sse(event: str | None, data: dict[str, Any]) -> bytes:
    """One server-sent-event frame; `event` None gives a bare `data:` frame (OpenAI chat)."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def is_dict_list(value: Any) -> list[dict[str, Any]]:
    """The dict items of `value` when it is a list, else []: request bodies are untrusted."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class FakeUpstream:
    """One fake provider of `kind` ("openai" | "anthropic" | "gemini") on its own HTTP port."""

    def __init__(self, kind: str, *, name: str | None = None, expect_key: str | None = None,
                 chunk_delay: float = 0.0, models: list[str] | None = None,
                 latency: LatencyProfile | None = None, prose: bool = False,
                 rate_limits: RateLimits | None = None, fault_rate: float = 0.0, seed: int | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        self.kind = kind
        self._provider: ModuleType = importlib.import_module(f"{__name__}.{kind}")
        self.name = name or kind
        self.expect_key = expect_key
        self.chunk_delay = chunk_delay
        self.models: list[str] = list(models or self._provider.DEFAULT_MODELS)
        self.received: list[ReceivedRequest] = []
        self.last_usage: dict[str, Any] | None = None
        self.echo_headers_on_error = False
        """When True, error bodies embed the received request headers verbatim (key-leak tests)."""
        self.validate = True
        """When True, bodies a real provider would refuse get its 400 (see the validate_* modules)."""
        self.rejected: list[str] = []
        """Messages of the 400s this fake answered because a request broke a provider rule."""
        self.latency = latency
        """Time to first byte and between chunks; overrides `chunk_delay` when set."""
        self.prose = prose
        """Answer with a few sentences on the prompt's topic instead of the echo."""
        self.rate_limits = rate_limits
        self.fault_rate = fault_rate
        """Share (0-1) of generation requests that get a random status from `fault_mix`."""
        self.fault_mix: dict[int, float] = {s: w for s, (w, _) in self._provider.FAULTS.items()}
        """Status → relative weight of the random faults; the provider's own mix by default."""
        self.faults: list[int] = []
        """Statuses of the random faults answered, in order."""
        self.throttled = 0
        """Requests refused with a 429 because a `rate_limits` bucket ran dry."""
        self.rng = random.Random(seed)
        self.sleep: Callable[[float], Awaitable[None]] | None = None
        """Stands in for `asyncio.sleep` in every delay the fake makes, so tests can record delays
        instead of waiting; None = `asyncio.sleep`, looked up when called (tests may patch it)."""
        self.base_url = ""
        self._failures: list[tuple[int, bytes | None, dict[str, str]]] = []
        self._hangs: list[float] = []
        self._break_after: int | None = None
        self._runner: web.AppRunner | None = None

    # ---- control knobs -------------------------------------------------------------------
    def fail_next(self, status: int, *, count: int = 1, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next `count` generation requests with `status` (provider error shape)."""
        self._failures += [(status, body, dict(headers or {}))] * count

    def hang_next(self, seconds: float, *, count: int = 1) -> None:
        """Sleep `seconds` before answering the next `count` generation requests."""
        self._hangs += [seconds] * count

    def break_stream_next(self, after_chunks: int) -> None:
        """Next stream: send `after_chunks` chunks, then drop the connection (no terminal event).

        A stream with no more than `after_chunks` chunks ends normally."""
        self._break_after = after_chunks

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = any free port); returns the base URL the provider's SDK wants:
        openai "http://HOST:PORT/v1", anthropic and gemini "http://HOST:PORT"."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self._provider.add_routes(self, app)
        # Short shutdown timeout: a hanging handler must not keep close() waiting for a minute.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound_port}{self._provider.BASE_PATH}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- shared request path (used by the provider modules) ------------------------------
    async def _pause(self, seconds: float) -> None:
        await (self.sleep or asyncio.sleep)(seconds)

    def _endpoint(self, handler: Handler, *, generation: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap a provider handler: record the request, then apply hang / key check / injected
        failure (hang and failure only for generation requests, so model listings and health
        probes never consume them)."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            rec = ReceivedRequest(request.method, request.path, dict(request.query),
                                  {k.lower(): v for k, v in request.headers.items()}, await request.read())
            self.received.append(rec)
            if generation and self._hangs:
                await self._pause(self._hangs.pop(0))
            if self.expect_key is not None and self._provider.api_key(rec) != self.expect_key:
                return self._error(request, 401, "Incorrect API key provided.")
            if generation and self._failures:
                status, body, headers = self._failures.pop(0)
                return self._error(request, status, f"fake-{self.name}: injected {status}", body=body, headers=headers)
            body = rec.json
            if request.method == "POST" and not isinstance(body, dict):
                return self._error(request, 400, "Request body is not a JSON object.")
            if generation and (refusal := await self._admit(request, rec, body)) is not None:
                return refusal
            token = _ANSWER.set(None)
            try:
                resp = await handler(self, request, body or {})
            except Invalid as e:  # a provider rule the request broke (raised before any reply is sent)
                self.rejected.append(e.message)
                return self._error(request, 400, e.message, param=e.param, code=e.code)
            finally:
                answer = _ANSWER.get()
                _ANSWER.reset(token)
            if generation and not resp.prepared and resp.status < 300:
                resp.headers.update(request.get(_RATE_HEADERS, {}))
                if self.latency is not None and answer is not None:
                    # A non-streamed answer arrives when the whole simulated stream would have ended.
                    await self._pause(sum(self.latency.chunk(self.rng) for _ in answer.pieces[1:]))
            return resp

        return wrapped

    async def _admit(self, request: web.Request, rec: ReceivedRequest, body: Any) -> web.Response | None:
        """Rate limits, random faults and time to first byte, in the order a real provider applies
        them; returns the refusal, or None to go on to the handler."""
        rate_headers: dict[str, str] = {}
        if self.rate_limits is not None:
            snap = self.rate_limits.take(estimate_tokens(rec.body, body))
            rate_headers = self._provider.rate_limit_headers(snap)
            if snap.limited:
                self.throttled += 1
                wait = max(1, math.ceil(snap.retry_after_s))
                return self._error(request, 429, self._provider.rate_limit_message(snap.limited, wait),
                                   headers={**rate_headers, "retry-after": str(wait)})
        if self.fault_rate and self.rng.random() < self.fault_rate:
            status = pick_fault(self.rng, self.fault_mix)
            self.faults.append(status)
            message = self._provider.FAULTS.get(status, (0, f"simulated HTTP {status}"))[1]
            if status == 429:
                wait = self.rng.randint(1, 2)
                return self._error(request, 429, message, headers={**rate_headers, "retry-after": str(wait)})
            if self.latency is not None:  # a server error usually comes after the model tried for a while
                await self._pause(self.latency.first_byte(self.rng))
            return self._error(request, status, message)
        request[_RATE_HEADERS] = rate_headers
        if self.latency is not None:
            await self._pause(self.latency.first_byte(self.rng))
        return None

    def _error(self, request: web.Request, status: int, message: str, *, body: bytes | None = None,
               headers: dict[str, str] | None = None, param: str | None = None,
               code: str | None = None) -> web.Response:
        """An error in this provider's own body shape (formats.md §5), or `body` verbatim. `param` /
        `code` fill OpenAI's error.param / error.code (Gemini puts `param` in a BadRequest detail)."""
        headers = {**self._provider.response_headers(), **(headers or {})}
        if body is None:
            if self.echo_headers_on_error:
                echoed = {str(k): v for k, v in request.headers.items()}
                message += " Received headers: " + orjson.dumps(echoed).decode()
            body = orjson.dumps(self._provider.error_payload(status, message, headers, param=param, code=code))
        headers.setdefault("content-type", "application/json")
        return web.Response(status=status, body=body, headers=headers)

    def _answer(self, model: str, system: list[str], turns: list[tuple[str, list[str]]],
                tool_names: list[str]) -> Answer:
        """The reply for normalised input: `turns` are (role, texts), role "tool" = tool results."""
        words = sum(len(t.split()) for t in system)
        words += sum(len(t.split()) for role, ts in turns if role != "tool" for t in ts)
        last_user = next((" ".join(ts) for role, ts in reversed(turns) if role == "user" and ts), "")
        wants_tool = bool(tool_names and turns and turns[-1][0] == "user" and _WEATHER.search(last_user))
        if self.prose:
            text = _prose.answer(model, last_user)
        else:
            text = f"Hello from fake-{self.name} ({model}): you said {last_user[:40]}"
        pieces = re.findall(r"\S+\s*", text)
        output = TOOL_CALL_OUTPUT_TOKENS if wants_tool else len(pieces)
        answer = Answer(model, text, pieces, tool_names[0] if wants_tool else None, words + BASE_PROMPT_TOKENS, output)
        _ANSWER.set(answer)
        return answer

    def _json(self, payload: dict[str, Any]) -> web.Response:
        return web.Response(body=orjson.dumps(payload), content_type="application/json",
                            headers=self._provider.response_headers())

    async def _stream(self, request: web.Request, frames: list[bytes], content_type: str = SSE) -> web.StreamResponse:
        """Write frames one by one (chunked), honouring the latency profile (or chunk_delay) and
        break_stream_next."""
        resp = web.StreamResponse(headers={"content-type": content_type, "cache-control": "no-cache",
                                           **self._provider.response_headers(), **request.get(_RATE_HEADERS, {})})
        brk, self._break_after = self._break_after, None
        try:
            await resp.prepare(request)
            for i, frame in enumerate(frames):
                if brk is not None and i >= brk:
                    # close() flushes what was written, then drops the connection without the
                    # final zero-length chunk: the client sees a truncated body.
                    if request.transport is not None:
                        request.transport.close()
                    return resp
                delay = self.latency.chunk(self.rng) if self.latency is not None and i else self.chunk_delay
                if i and delay:
                    await self._pause(delay)
                await resp.write(frame)
            await resp.write_eof()
        except ConnectionResetError:
            pass  # client went away mid-stream; aiohttp handles the rest (a cancel is re-raised)
        return resp
