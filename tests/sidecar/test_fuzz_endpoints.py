"""Property-based fuzzing of every inbound generation endpoint against a real sidecar (issue 6, "Bad input").

One sidecar (and its three fake providers) runs per module on its own event loop in a background thread, so
hypothesis can drive plain synchronous tests with hundreds of examples without restarting anything.
Every request is bounded by a client timeout.

The property, for any body at all: the answer is a 200 (the input happened to be valid) or a status < 500
whose body is well-formed JSON in the *caller's* own error shape — never a 5xx, a traceback, HTML or a hang.
Models are routed both same-format (pass-through) and cross-format (translated).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import KEYS, Upstreams, config_for, start_sidecar
from sidecar.fake_upstream import FakeUpstream
from sidecar.health import HealthBook
from sidecar.keys import MemoryKeyStore
from sidecar.state import STATE

REQUEST_TIMEOUT = 15.0
EXAMPLES = Counter()
"""Examples run per test (hypothesis and corpus); the summary test at the end prints and checks the total."""

MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5", "gemini": "gemini/gemini-2.5-flash"}


# ---- one live sidecar per module -------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes
    request_id: str | None = None


class Live:
    """A sidecar in front of fake providers, served from an event loop in a background thread."""

    def __init__(self, data_dir) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-sidecar", daemon=True)
        self.thread.start()
        self.data_dir = data_dir
        self.run(self._start())

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self.ups = Upstreams(*(FakeUpstream(k, expect_key=KEYS[k]) for k in ("openai", "anthropic", "gemini")))
        for u in (self.ups.openai, self.ups.anthropic, self.ups.gemini):
            await u.start()
        self.sc, self.runner = await start_sidecar(config_for(self.ups, self.data_dir), MemoryKeyStore(KEYS))
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))

    async def _stop(self) -> None:
        await self.http.close()
        await self.runner.cleanup()
        for u in (self.ups.openai, self.ups.anthropic, self.ups.gemini):
            await u.close()

    def close(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    async def _post(self, path: str, data: bytes, headers: dict[str, str]) -> Reply:
        async with self.http.post(self.sc.url + path, data=data, headers=headers) as resp:
            return Reply(resp.status, resp.headers.get("Content-Type", ""), await resp.read(),
                         resp.headers.get("x-sidecar-request-id"))

    async def _record(self, request_id: str) -> dict | None:
        async with asyncio.timeout(5):
            while True:
                await self.sc.store.flush()
                row = await asyncio.to_thread(self.sc.store.get, request_id)
                if row is not None and row["latency_ms"] is not None:
                    return row
                await asyncio.sleep(0.02)

    def forgive_providers(self) -> None:
        self.sc.app[STATE].proxy.health = HealthBook()

    def record(self, request_id: str) -> dict | None:
        return self.run(self._record(request_id))

    def post(self, path: str, data: bytes, content_type: str = "application/json") -> Reply:
        """POST raw bytes; a hang shows up as a TimeoutError (the property's "never a hang")."""
        return self.run(self._post(path, data, {"Content-Type": content_type}), timeout=REQUEST_TIMEOUT + 5)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    lv = Live(tmp_path_factory.mktemp("fuzz") / "data")
    yield lv
    lv.close()


# ---- endpoints, valid bases and the property ---------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    name: str
    shape: str  # the caller's error shape: openai | anthropic | gemini
    native: str  # the provider that speaks this format (same-format routing)

    def path(self, model: str, stream: bool = False) -> str:
        if self.name == "gemini":
            return f"/v1beta/models/{model.removeprefix('gemini/')}:generateContent"
        if self.name == "gemini_stream":
            return f"/v1beta/models/{model.removeprefix('gemini/')}:streamGenerateContent?alt=sse"
        return {"chat": "/v1/chat/completions", "responses": "/v1/responses", "messages": "/v1/messages"}[self.name]

    def base(self, model: str) -> dict[str, Any]:
        """A valid request for this endpoint (the model goes in the body except for Gemini)."""
        if self.name == "chat":
            return {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 20}
        if self.name == "responses":
            return {"model": model, "input": "hello", "max_output_tokens": 20}
        if self.name == "messages":
            return {"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}
        return {"contents": [{"role": "user", "parts": [{"text": "hello"}]}], "generationConfig": {"maxOutputTokens": 20}}

    @property
    def fields(self) -> list[tuple[Any, ...]]:
        """Every known field (as a path into the base body), to put wrong types into."""
        return FIELDS[self.name]


ENDPOINTS = [Endpoint("chat", "openai", "openai"), Endpoint("responses", "openai", "openai"),
             Endpoint("messages", "anthropic", "anthropic"), Endpoint("gemini", "gemini", "gemini"),
             Endpoint("gemini_stream", "gemini", "gemini")]

_GEMINI_FIELDS: list[tuple[Any, ...]] = [
    ("contents",), ("contents", 0), ("contents", 0, "role"), ("contents", 0, "parts"), ("contents", 0, "parts", 0),
    ("contents", 0, "parts", 0, "text"), ("contents", 0, "parts", 0, "inlineData"),
    ("contents", 0, "parts", 0, "functionCall"), ("systemInstruction",), ("systemInstruction", "parts"),
    ("generationConfig",), ("generationConfig", "maxOutputTokens"), ("generationConfig", "temperature"),
    ("generationConfig", "stopSequences"), ("generationConfig", "candidateCount"),
    ("generationConfig", "thinkingConfig"), ("generationConfig", "responseMimeType"), ("tools",),
    ("tools", 0, "functionDeclarations"), ("toolConfig",), ("safetySettings",), ("cachedContent",),
]
FIELDS: dict[str, list[tuple[Any, ...]]] = {
    "chat": [("model",), ("messages",), ("messages", 0), ("messages", 0, "role"), ("messages", 0, "content"),
             ("messages", 0, "content", 0), ("messages", 0, "name"), ("messages", 0, "tool_calls"),
             ("max_tokens",), ("max_completion_tokens",), ("temperature",), ("top_p",), ("n",), ("stream",),
             ("stream_options",), ("stream_options", "include_usage"), ("stop",), ("tools",), ("tools", 0),
             ("tools", 0, "function"), ("tool_choice",), ("response_format",), ("seed",), ("user",),
             ("reasoning_effort",), ("logit_bias",), ("parallel_tool_calls",)],
    "responses": [("model",), ("input",), ("input", 0), ("input", 0, "role"), ("input", 0, "content"),
                  ("input", 0, "content", 0), ("instructions",), ("max_output_tokens",), ("temperature",),
                  ("stream",), ("tools",), ("tools", 0), ("tool_choice",), ("text",), ("text", "format"),
                  ("reasoning",), ("reasoning", "effort"), ("previous_response_id",), ("store",), ("include",),
                  ("metadata",), ("parallel_tool_calls",)],
    "messages": [("model",), ("max_tokens",), ("messages",), ("messages", 0), ("messages", 0, "role"),
                 ("messages", 0, "content"), ("messages", 0, "content", 0), ("messages", 0, "content", 0, "type"),
                 ("system",), ("system", 0), ("stream",), ("temperature",), ("top_k",), ("stop_sequences",),
                 ("tools",), ("tools", 0), ("tools", 0, "input_schema"), ("tool_choice",), ("metadata",),
                 ("thinking",), ("thinking", "budget_tokens")],
    "gemini": _GEMINI_FIELDS,
    "gemini_stream": _GEMINI_FIELDS,
}


UPSTREAM_5XX: Counter = Counter()
"""5xx answers that the *fake provider* produced (its validator crashed) and the sidecar relayed faithfully,
by the first 120 bytes of the body: a fault of sidecar/fakes, reported, not of the sidecar."""


def check_property(ep: Endpoint, reply: Reply, streamed: bool, live: Live | None = None) -> None:
    """200 (valid input) or < 500 with a JSON error in the caller's own shape; never 5xx / traceback / HTML.

    A pass-through 5xx is accepted only when the stored record shows the provider itself answered it."""
    if reply.status >= 500 and live is not None and reply.request_id:
        row = live.record(reply.request_id)
        attempts = (row or {}).get("attempts") or []
        if any(a.get("status") == reply.status for a in attempts) and row["provider"] == ep.native:
            UPSTREAM_5XX[reply.body[:120]] += 1
            live.forgive_providers()  # the fake's crash must not open its breaker for the next examples
            return
    assert reply.status < 500, (reply.status, reply.body[:800])
    assert b"Traceback" not in reply.body, reply.body[:800]
    assert b"<html" not in reply.body.lower()[:2000], reply.body[:800]
    if reply.status == 200 and "text/event-stream" in reply.content_type:
        assert reply.body.startswith((b"data:", b"event:")), reply.body[:300]
        return  # a stream (the field may have survived the mutation); its errors are events, tested elsewhere
    assert reply.content_type.startswith("application/json"), (reply.status, reply.content_type, reply.body[:300])
    data = orjson.loads(reply.body)
    if reply.status == 200:
        assert isinstance(data, dict)
        return
    assert 400 <= reply.status < 500, reply.status
    if ep.shape == "anthropic":
        assert data["type"] == "error" and isinstance(data["error"]["message"], str) and data["error"]["type"], data
    elif ep.shape == "gemini":
        err = data["error"]
        assert err["code"] == reply.status and isinstance(err["message"], str) and err["status"].isupper(), data
    else:
        err = data["error"]
        assert isinstance(err, dict) and isinstance(err["message"], str) and "type" in err, data


# ---- adversarial values -----------------------------------------------------------------------------

DEEP = 5000
RAW_FRAGMENTS: list[bytes] = [
    b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" + b"0" * 40, b"-" + b"9" * 60,
    b"[" * DEEP + b"]" * DEEP, b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b'"\xff\xfe\xfd invalid utf-8"', b'"\xc3\x28"', b'"\\ud800 lone surrogate"', b'"\x00nul"',
    b'"' + b"x" * (2 * 1024 * 1024) + b'"',
]
"""Value texts JSON encoders would not produce, spliced into otherwise ordinary bodies."""


@dataclass(frozen=True)
class Raw:
    text: bytes


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([10**40, -(10**40), 2**63, -(2**63) - 1, 2**64]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
)
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
nasty_value = st.one_of(json_value, st.sampled_from(RAW_FRAGMENTS).map(Raw),
                        st.sampled_from(["", " ", "\u0000", "\ud83d\ude00" * 50, "a" * 5000, "🙂", "\u202e"]))


def encode(obj: Any) -> bytes:
    """JSON text of ``obj`` with every `Raw` spliced in verbatim (stdlib json: big ints are exact)."""
    raws: list[bytes] = []

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"\u0001RAW{len(raws) - 1}\u0001"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(obj), ensure_ascii=False).encode("utf-8", "surrogatepass")
    for i, raw in enumerate(raws):
        text = text.replace(f'"\\u0001RAW{i}\\u0001"'.encode(), raw, 1)
    return text


def set_path(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    """``body`` with the field at ``path`` replaced by ``value`` (missing containers are created)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(body) if isinstance(body, list) else []
        while len(items) <= head:
            items.append({})
        items[head] = set_path(items[head], rest, value)
        return items
    out = dict(body) if isinstance(body, dict) else {}
    out[head] = set_path(out.get(head, {} if rest and not isinstance(rest[0], int) else []), rest, value)
    return out


def del_path(body: Any, path: tuple[Any, ...]) -> Any:
    if not isinstance(body, (dict, list)) or not path:
        return body
    head, rest = path[0], path[1:]
    if isinstance(body, dict) and not isinstance(head, int) and head in body:
        out = dict(body)
        if rest:
            out[head] = del_path(out[head], rest)
        else:
            del out[head]
        return out
    if isinstance(body, list) and isinstance(head, int) and head < len(body):
        items = list(body)
        if rest:
            items[head] = del_path(items[head], rest)
        else:
            del items[head]
        return items
    return body


@st.composite
def fuzz_case(draw: st.DrawFn, ep: Endpoint, routing: str = "any") -> tuple[str, bytes, bool, str]:
    """(path, body bytes, stream wanted, description) for ``ep`` with a same- or cross-format model."""
    providers = {"same": [ep.native], "cross": [p for p in MODELS if p != ep.native]}.get(routing, list(MODELS))
    provider = draw(st.sampled_from(providers))
    model = MODELS[provider]
    body: Any = ep.base(model)
    stream = ep.name == "gemini_stream" or draw(st.booleans()) and ep.name not in ("gemini",)
    if stream and ep.name in ("chat", "responses", "messages"):
        body["stream"] = True
    kind = draw(st.sampled_from(["wrong_type", "wrong_type", "wrong_type", "missing", "unknown", "several",
                                 "random_json", "raw_bytes"]))
    if kind in ("wrong_type", "several"):
        for _ in range(1 if kind == "wrong_type" else draw(st.integers(2, 5))):
            body = set_path(body, draw(st.sampled_from(ep.fields)), draw(nasty_value))
    elif kind == "missing":
        for _ in range(draw(st.integers(1, 3))):
            body = del_path(body, draw(st.sampled_from(ep.fields)))
    elif kind == "unknown":
        extra = draw(st.dictionaries(st.text(min_size=1, max_size=12), nasty_value, min_size=1, max_size=3))
        body = {**body, **{k: v for k, v in extra.items() if k not in body}}
    elif kind == "random_json":
        body = draw(json_value)
    if kind == "raw_bytes":
        data = draw(st.one_of(st.binary(max_size=200), st.sampled_from(CORPUS_BYTES)))
    else:
        data = encode(body)
    return ep.path(model, stream), data, stream, f"{kind} via {provider}"


CORPUS_BYTES: list[bytes] = [
    b"", b" ", b"null", b"0", b"true", b'"a string"', b"[]", b"[{}]", b"{", b"}", b"{]", b"not json at all",
    b"\xff\xfe\x00\x00", b'{"model": "\xff"}', b"<html><body>hi</body></html>", b"\x00" * 64, b"{}" * 3,
    b"[" * DEEP + b"]" * DEEP, b'{"a":' * DEEP + b"1" + b"}" * DEEP, b"[" * 100_000,
    b'{"model": 1e999}', b'{"model": NaN}', b'{"model": "openai/gpt-4o-mini", "messages": Infinity}',
    b'\xef\xbb\xbf{"model": "openai/gpt-4o-mini"}',  # BOM
    b'{"model":"openai/gpt-4o-mini","model":"anthropic/claude-haiku-4-5"}',  # duplicate keys
]


# ---- known bugs (reported; see the regression tests at the end) ---------------------------------------

TRANSLATION_CRASHES = (
    "500 'internal sidecar error' instead of a 400 when a cross-format request has a wrong-typed field: "
    "adapters/gemini_codec.py _contents (role list/dict: unhashable), _system (systemInstruction.parts "
    "not a list), _generation (stopSequences not a list), _tools (tools / functionDeclarations not a list); "
    "adapters/anthropic_parse.py _parse_tools (tools not a list); sidecar/proxy.py _plan_translation "
    "orjson.dumps of an int beyond 64 bits (maxOutputTokens 1e40)"
)
CRASHING: set[tuple[str, str]] = set()  # was messages/gemini/gemini_stream cross-format: fixed


def _xfail_if(crashes: bool) -> list[Any]:
    return [pytest.mark.xfail(strict=True, reason=TRANSLATION_CRASHES)] if crashes else []


# ---- the tests ---------------------------------------------------------------------------------------

FUZZ_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                HealthCheck.data_too_large, HealthCheck.large_base_example])


@pytest.mark.parametrize("ep,routing", [
    pytest.param(ep, routing, id=f"{ep.name}-{routing}") for ep in ENDPOINTS for routing in ("same", "cross")])
def test_fuzzed_bodies_get_a_well_formed_answer(live: Live, ep: Endpoint, routing: str) -> None:
    """Derandomized, so reproducible; its 40 examples per case happen not to hit the known translation
    crashes (the exhaustive corpus below does, and is marked xfail for them)."""
    @FUZZ_SETTINGS
    @given(case=fuzz_case(ep, routing))
    def prop(case: tuple[str, bytes, bool, str]) -> None:
        path, data, stream, _why = case
        EXAMPLES[f"hypothesis/{ep.name}-{routing}"] += 1
        check_property(ep, live.post(path, data), stream, live)

    prop()


def corpus(ep: Endpoint, model: str) -> list[tuple[bytes, str]]:
    """Every fixed nasty body; every raw fragment in the top-level fields; every wrong type in every field;
    every field missing."""
    base = ep.base(model)
    if ep.name in ("chat", "responses", "messages"):
        bases = [base, {**base, "stream": True}]
    else:
        bases = [base]
    cases = [(data, "application/json") for data in CORPUS_BYTES]
    cases += [(encode(set_path(base, field, Raw(raw))), "application/json")
              for field in ep.fields[:4] for raw in RAW_FRAGMENTS]
    cases += [(encode(set_path(b, field, value)), "application/json") for b in bases for field in ep.fields
              for value in (None, True, 10**40, -1, 1.5, "x", [], {}, [[]], [None], ["x"], {"": None})]
    cases += [(encode(del_path(base, field)), "application/json") for field in ep.fields]
    cases += [(encode(base), ct) for ct in ("text/plain", "application/x-www-form-urlencoded",
                                            "multipart/form-data; boundary=x", "")]
    return cases


@pytest.mark.parametrize("ep,provider", [
    pytest.param(ep, provider, id=f"{ep.name}-{provider}",
                 marks=_xfail_if((ep.name, "same" if provider == ep.native else "cross") in CRASHING))
    for ep in ENDPOINTS for provider in MODELS])
def test_adversarial_corpus(live: Live, ep: Endpoint, provider: str) -> None:
    """The whole corpus is sent (failures are collected, not stopped at) and must all hold the property."""
    model = MODELS[provider]
    path = ep.path(model, ep.name == "gemini_stream")
    failures: Counter = Counter()
    for data, content_type in corpus(ep, model):
        EXAMPLES[f"corpus/{ep.name}"] += 1
        reply = live.post(path, data, content_type)
        try:
            check_property(ep, reply, ep.name == "gemini_stream", live)
        except AssertionError:
            failures[(reply.status, reply.body[:150])] += 1
            live.forgive_providers()
    assert not failures, "\n".join(f"{n} x {k}" for k, n in failures.most_common())


# Minimal reproductions of the crashes the fuzzing found (each: endpoint path, body) -> expected 400.
CRASH_REPROS = [
    ("gemini_codec._contents role is a list", "/v1beta/models/openai/gpt-4o-mini:generateContent",
     b'{"contents":[{"role":[],"parts":[{"text":"hello"}]}]}', "gemini"),
    ("gemini_codec._contents role is an object", "/v1beta/models/anthropic/claude-haiku-4-5:generateContent",
     b'{"contents":[{"role":{},"parts":[{"text":"hello"}]}]}', "gemini"),
    ("gemini_codec._system parts not a list", "/v1beta/models/openai/gpt-4o-mini:generateContent",
     b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"systemInstruction":{"parts":true}}', "gemini"),
    ("gemini_codec._generation stopSequences not a list", "/v1beta/models/openai/gpt-4o-mini:generateContent",
     b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"stopSequences":-1}}', "gemini"),
    ("gemini_codec._tools tools not a list", "/v1beta/models/openai/gpt-4o-mini:generateContent",
     b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":true}', "gemini"),
    ("gemini_codec._tools functionDeclarations not a list", "/v1beta/models/openai/gpt-4o-mini:generateContent",
     b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":1}]}', "gemini"),
    ("proxy._plan_translation int beyond 64 bits", "/v1beta/models/openai/gpt-4o-mini:generateContent",
     b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":'
     + b"1" + b"0" * 40 + b"}}", "gemini"),
    ("anthropic_parse._parse_tools tools not a list", "/v1/messages",
     b'{"model":"openai/gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"hi"}],"tools":true}',
     "anthropic"),
]


@pytest.mark.parametrize("what,path,body,shape", CRASH_REPROS, ids=[c[0] for c in CRASH_REPROS])
def test_wrong_typed_field_in_translated_request_is_400(live: Live, what: str, path: str, body: bytes,
                                                         shape: str) -> None:
    reply = live.post(path, body)
    assert reply.status == 400, (what, reply.status, reply.body)
    check_property(next(e for e in ENDPOINTS if e.shape == shape), reply, False)


def test_sidecar_still_healthy_and_examples_counted(live: Live) -> None:
    """After the fuzzing the sidecar still serves a valid request on every endpoint; print the totals."""
    live.forgive_providers()
    for ep in ENDPOINTS:
        for provider in MODELS:
            model = MODELS[provider]
            stream = ep.name == "gemini_stream"
            reply = live.post(ep.path(model, stream), encode(ep.base(model)))
            assert reply.status == 200, (ep.name, provider, reply.body[:500])
            check_property(ep, reply, stream)
    total = sum(EXAMPLES.values())
    if not total:
        pytest.skip("run with the fuzz tests above to count their examples")
    print(f"\nfuzz examples run: {total} ({dict(sorted(EXAMPLES.items()))})")
    if UPSTREAM_5XX:
        print(f"fake-provider 5xx relayed faithfully by the sidecar (a sidecar/fakes bug): {sum(UPSTREAM_5XX.values())}")
    assert total >= 1000
