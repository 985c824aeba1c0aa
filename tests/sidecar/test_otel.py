"""OpenTelemetry export: real traffic through a real sidecar, received by an in-test OTLP/HTTP collector.

The collector is a small aiohttp app on 127.0.0.1 that accepts ``POST /v1/traces`` and ``/v1/metrics``
(protobuf) and decodes them with ``opentelemetry-proto``'s own messages. The SDK exports from its own threads;
app cleanup flushes, so everything is there once ``runner.cleanup()`` returns.
"""

from __future__ import annotations

import asyncio
import gzip
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: E402
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from conftest import KEYS, Upstreams, config_for, start_sidecar  # noqa: E402
from sidecar import otel  # noqa: E402
from sidecar.app import build_app  # noqa: E402
from sidecar.config import ConfigError, config_from_dict  # noqa: E402
from sidecar.keys import MemoryKeyStore  # noqa: E402

PROMPT = "zebra-quokka-7781 please answer briefly"
"""Request text: the fake upstream echoes it into the answer, so neither may appear in what is exported."""
COLLECTOR_TOKEN = "collector-auth-abc123"
WAIT = 5.0


class Collector:
    """An OTLP/HTTP receiver keeping every raw body and its headers."""

    def __init__(self) -> None:
        self.traces: list[bytes] = []
        self.metrics: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.headers.append(dict(request.headers))
        assert request.headers.get("Content-Type") == "application/x-protobuf"
        if request.path == "/v1/traces":
            self.traces.append(body)
            reply = ExportTraceServiceResponse()
        else:
            self.metrics.append(body)
            reply = ExportMetricsServiceResponse()
        return web.Response(body=reply.SerializeToString(), content_type="application/x-protobuf")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._receive)
        app.router.add_post("/v1/metrics", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def spans(self) -> list[tuple[Any, dict[str, Any], Any]]:
        """(span, attributes, resource attributes) for every exported span."""
        out = []
        for body in self.traces:
            req = ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    out.extend((span, attributes(span.attributes), resource) for span in ss.spans)
        return out

    def last_metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Metric name → [(attributes, data point)], from the last export that carried it (cumulative)."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        for body in self.metrics:
            req = ExportMetricsServiceRequest.FromString(body)
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        points = getattr(m, kind).data_points
                        found[m.name] = [(attributes(p.attributes), p) for p in points]
                        found[m.name + ":unit"] = m.unit  # type: ignore[assignment]
                        found[m.name + ":kind"] = kind  # type: ignore[assignment]
        return found


def attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    c = Collector()
    await c.start()
    yield c
    await c.close()


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> int:
    async with http.post(url, data=orjson.dumps(body), headers={"content-type": "application/json",
                                                                 "user-agent": "otel-test/1.0"}) as resp:
        await resp.read()
        return resp.status


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], **extra}


async def test_spans_and_metrics_match_the_records(upstreams: Upstreams, collector: Collector,
                                                   tmp_path: Path) -> None:
    config = config_for(upstreams, tmp_path / "data", {
        "models": {"smart": {"targets": ["openai/gpt-4o", "anthropic/claude-haiku-4-5"]}},
        "otel": {"endpoint": collector.url, "headers": {"x-collector-token": COLLECTOR_TOKEN},
                 "service_name": "sidecar-under-test"},
    })
    sc, runner = await start_sidecar(config, MemoryKeyStore(KEYS))
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            chat_url = sc.url + "/v1/chat/completions"
            assert await post(http, chat_url, chat("openai/gpt-4o")) == 200
            assert await post(http, chat_url, chat("openai/gpt-4o", stream=True)) == 200
            assert await post(http, sc.url + "/v1/messages", {
                "model": "anthropic/claude-haiku-4-5", "max_tokens": 20,
                "messages": [{"role": "user", "content": PROMPT}]}) == 200
            assert await post(http, chat_url, chat("gemini/gemini-2.0-flash")) == 200
            upstreams.openai.fail_next(400)
            assert await post(http, chat_url, chat("openai/gpt-4o")) == 400
            upstreams.openai.fail_next(500)
            assert await post(http, chat_url, chat("smart")) == 200  # fails over to anthropic
        n = 6
        async with asyncio.timeout(WAIT):
            while True:
                await sc.store.flush()
                rows = await asyncio.to_thread(sc.store.recent, 1000)
                if len(rows) == n:
                    break
                await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()  # type: ignore[attr-defined]  # flushes the exporters

    # ---- spans: one per request, attributes equal to the stored record
    spans = collector.spans()
    assert len(spans) == n
    by_id = {attrs["sidecar.request_id"]: (span, attrs, res) for span, attrs, res in spans}
    assert set(by_id) == {r["id"] for r in rows}
    provider_names = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
    for r in rows:
        span, attrs, resource = by_id[r["id"]]
        assert resource["service.name"] == "sidecar-under-test"
        assert span.name == f"chat {r['requested_model']}"
        assert span.kind == span.SPAN_KIND_CLIENT
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == provider_names[r["provider"]]
        assert attrs["gen_ai.request.model"] == r["requested_model"]
        assert attrs["gen_ai.response.model"] == r["model"]
        assert attrs.get("gen_ai.usage.input_tokens") == r["input_tokens"]
        assert attrs.get("gen_ai.usage.output_tokens") == r["output_tokens"]
        assert attrs.get("sidecar.cost_usd") == r["cost_usd"]
        assert attrs["sidecar.inbound"] == r["inbound"]
        assert attrs["sidecar.attempts"] == len(r["attempts"])
        assert attrs["sidecar.client"] == r["client"]
        assert attrs["http.response.status_code"] == r["status"]
        duration_ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
        assert duration_ms == pytest.approx(r["latency_ms"], abs=0.01)
        if r["status"] >= 400:
            assert attrs["error.type"] == str(r["status"])
            assert span.status.code == span.status.STATUS_CODE_ERROR
        else:
            assert "error.type" not in attrs
            assert span.status.code != span.status.STATUS_CODE_ERROR
    failed = [r for r in rows if r["status"] == 400]
    assert len(failed) == 1 and by_id[failed[0]["id"]][1]["error.type"] == "400"
    smart = next(r for r in rows if r["requested_model"] == "smart")
    assert by_id[smart["id"]][1]["sidecar.attempts"] == 2
    assert by_id[smart["id"]][1]["gen_ai.response.model"] == "claude-haiku-4-5"
    assert any(r["cost_usd"] for r in rows)
    assert {r["inbound"] for r in rows} == {"openai_chat", "anthropic"}

    # ---- metrics: data point sums equal the records' sums
    metrics = collector.last_metrics()
    assert metrics["gen_ai.client.token.usage:kind"] == "histogram"
    assert metrics["gen_ai.client.token.usage:unit"] == "{token}"
    tokens = metrics["gen_ai.client.token.usage"]
    for kind in ("input", "output"):
        points = [p for a, p in tokens if a["gen_ai.token.type"] == kind]
        assert sum(p.sum for p in points) == sum(r[f"{kind}_tokens"] or 0 for r in rows) > 0
        assert sum(p.count for p in points) == sum(1 for r in rows if r[f"{kind}_tokens"] is not None)
    assert {a["gen_ai.token.type"] for a, _ in tokens} == {"input", "output"}
    openai_input = [p for a, p in tokens if a["gen_ai.token.type"] == "input"
                    and a["gen_ai.provider.name"] == "openai" and a["gen_ai.request.model"] == "openai/gpt-4o"]
    assert sum(p.sum for p in openai_input) == sum(
        r["input_tokens"] or 0 for r in rows if r["provider"] == "openai" and r["requested_model"] == "openai/gpt-4o")

    assert metrics["gen_ai.client.operation.duration:unit"] == "s"
    duration = metrics["gen_ai.client.operation.duration"]
    assert sum(p.count for _, p in duration) == n
    assert sum(p.sum for _, p in duration) == pytest.approx(sum(r["latency_ms"] for r in rows) / 1000, rel=1e-6)
    errored = [p for a, p in duration if a.get("error.type") == "400"]
    assert sum(p.count for p in errored) == 1

    assert metrics["sidecar.cost:kind"] == "sum"
    assert metrics["sidecar.cost:unit"] == "USD"
    cost = metrics["sidecar.cost"]
    assert sum(p.as_double for _, p in cost) == pytest.approx(
        sum(r["cost_usd"] for r in rows if r["cost_usd"] is not None), rel=1e-9)

    # ---- nothing secret and no content left the machine; the collector's own header did arrive
    exported = b"".join(collector.traces + collector.metrics)
    for key in KEYS.values():
        assert key.encode() not in exported
        assert all(key not in v for h in collector.headers for v in h.values())
    assert b"zebra-quokka" not in exported and PROMPT.encode() not in exported
    assert b"you said" not in exported  # the fake's answer text
    for r in rows:
        if r["error"]:
            assert r["error"].encode() not in exported
    assert COLLECTOR_TOKEN.encode() not in exported
    assert all(h.get("x-collector-token") == COLLECTOR_TOKEN for h in collector.headers)


async def test_dead_collector_never_hurts_requests(upstreams: Upstreams, tmp_path: Path) -> None:
    """Nothing listens at the endpoint: requests still succeed and cleanup still returns."""
    config = config_for(upstreams, tmp_path / "data", {"otel": {"endpoint": "http://127.0.0.1:9"}})
    sc, runner = await start_sidecar(config, MemoryKeyStore(KEYS))
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                assert await post(http, sc.url + "/v1/chat/completions", chat("openai/gpt-4o")) == 200
    finally:
        async with asyncio.timeout(30):
            await runner.cleanup()  # type: ignore[attr-defined]


def test_listener_swallows_its_own_failures(upstreams: Upstreams, tmp_path: Path) -> None:
    exporter = otel.OtelExporter(config_from_dict({"otel": {"endpoint": "http://127.0.0.1:9"}}).otel,  # type: ignore[arg-type]
                                 {}, otel.load_sdk())
    try:
        from sidecar.events import Event

        exporter.on_event(Event("request_finished", {"id": "x", "ts": "not a time", "latency_ms": "bad",
                                                     "attempts": 3}))  # must not raise
        exporter.on_event(Event("attempt", {}))
    finally:
        exporter.shutdown()


def test_missing_sdk_is_a_clear_startup_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in otel.SDK_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    config = config_from_dict({"otel": {"endpoint": "http://127.0.0.1:4318"}})
    with pytest.raises(otel.OtelUnavailable) as info:
        build_app(config, keys=MemoryKeyStore({}))
    assert isinstance(info.value, ConfigError)
    assert "pip install 'llm-sidecar[otel]'" in str(info.value)
    # without [otel] the SDK is never needed
    build_app(config_from_dict({}), keys=MemoryKeyStore({}))


def test_otel_config_is_validated() -> None:
    assert config_from_dict({}).otel is None
    o = config_from_dict({"otel": {"endpoint": "http://collector:4318/", "headers": {"a": "b"},
                                   "service_name": "ws-1", "metrics": False}}).otel
    assert o is not None and o.endpoint == "http://collector:4318" and o.headers == {"a": "b"}
    assert o.service_name == "ws-1" and o.traces and not o.metrics
    assert config_from_dict({"otel": {"endpoint": "http://c:4318/v1/traces"}}).otel.endpoint == "http://c:4318"  # type: ignore[union-attr]
    assert config_from_dict({"otel": {"endpoint": "http://c:4318", "traces": False, "metrics": False}}).otel is None
    for bad, word in [({}, "endpoint"), ({"endpoint": "c:4318"}, "http"), ({"endpoint": "http://c", "x": 1}, "x"),
                      ({"endpoint": "http://c", "headers": {"a": 1}}, "headers"),
                      ({"endpoint": "http://c", "traces": "yes"}, "traces"),
                      ({"endpoint": "http://c", "export_interval_s": 0}, "export_interval_s")]:
        with pytest.raises(ConfigError, match=word):
            config_from_dict({"otel": bad})


def test_error_type_is_content_free() -> None:
    assert otel.error_type({"status": 200, "error": None}) is None
    assert otel.error_type({"status": 429, "error": "quota for sk-abc exceeded"}) == "429"
    assert otel.error_type({"status": 200, "error": "upstream said: something", "stream": True}) == "stream_error"
    assert otel.error_type({"status": 200, "error": "client disconnected"}) == "client_disconnected"
    assert otel.provider_name("myproxy", "anthropic") == "anthropic"
    assert otel.provider_name("mistral", "openai") == "mistral_ai"
    assert otel.provider_name(None, None) == "none"
