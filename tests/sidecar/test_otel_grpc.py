"""OpenTelemetry export over OTLP/gRPC (``[otel] protocol = "grpc"``): real traffic through a real sidecar, received
by an in-test gRPC collector on 127.0.0.1 that implements OTLP's TraceService and MetricsService with the
``*_pb2_grpc`` modules of ``opentelemetry-proto``. App cleanup flushes both exporters, so everything has arrived
once ``runner.cleanup()`` returns; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", reason="the otel extra is not installed")
import grpc  # noqa: E402
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc  # noqa: E402

from conftest import KEYS, Upstreams, config_for, start_sidecar  # noqa: E402
from sidecar import otel  # noqa: E402
from sidecar.app import build_app  # noqa: E402
from sidecar.config import ConfigError, config_from_dict  # noqa: E402
from sidecar.keys import MemoryKeyStore  # noqa: E402

PROMPT = "okapi-narwhal-5521 answer briefly"
"""The fake echoes it into its answer: neither may appear in what is exported."""
TOKEN = "grpc-collector-secret-42"
WAIT = 10.0


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: GrpcCollector) -> None:
        self.sink = sink

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - the gRPC method name
        self.sink.metadata.append(dict(context.invocation_metadata()))
        self.sink.traces.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, sink: GrpcCollector) -> None:
        self.sink = sink

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.sink.metadata.append(dict(context.invocation_metadata()))
        self.sink.metrics.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class GrpcCollector:
    """A gRPC OTLP receiver in its own threads, keeping every request and its metadata."""

    def __init__(self) -> None:
        self.traces: list[Any] = []
        self.metrics: list[Any] = []
        self.metadata: list[dict[str, str]] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[tuple[Any, dict[str, Any], dict[str, Any]]]:
        return [(span, attributes(span.attributes), attributes(rs.resource.attributes))
                for req in self.traces for rs in req.resource_spans for ss in rs.scope_spans for span in ss.spans]

    def last_points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """Data points of metric ``name`` from the last export carrying it (the SDK sends cumulative totals)."""
        found: list[tuple[dict[str, Any], Any]] = []
        for req in self.metrics:
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == name:
                            kind = m.WhichOneof("data")
                            found = [(attributes(p.attributes), p) for p in getattr(m, kind).data_points]
        return found

    def exported_bytes(self) -> bytes:
        return b"".join(r.SerializeToString() for r in self.traces + self.metrics)


def attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


@pytest.fixture(autouse=True)
def _no_stray_grpc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``OTEL_EXPORTER_OTLP_*`` in the developer's shell must not steer the exporters under test."""
    for name in ("OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
                 "OTEL_EXPORTER_OTLP_METRICS_INSECURE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def collector() -> Iterator[GrpcCollector]:
    c = GrpcCollector()
    c.server.start()
    yield c
    c.server.stop(grace=None).wait(5)


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> int:
    async with http.post(url, data=orjson.dumps(body), headers={"content-type": "application/json"}) as resp:
        await resp.read()
        return resp.status


async def run_traffic(upstreams: Upstreams, tmp_path: Path, otel_table: dict[str, Any]) -> list[dict[str, Any]]:
    """Four requests (plain, stream, Anthropic format, a failover) through a sidecar exporting with ``otel_table``;
    returns the stored records once the app (and so the exporters) has shut down."""
    config = config_for(upstreams, tmp_path / "data", {
        "models": {"smart": {"targets": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]}}, "otel": otel_table})
    sc, runner = await start_sidecar(config, MemoryKeyStore(KEYS))
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            chat = sc.url + "/v1/chat/completions"
            msgs = [{"role": "user", "content": PROMPT}]
            assert await post(http, chat, {"model": "openai/gpt-4o-mini", "messages": msgs}) == 200
            assert await post(http, chat, {"model": "openai/gpt-4o-mini", "messages": msgs, "stream": True}) == 200
            assert await post(http, sc.url + "/v1/messages", {"model": "anthropic/claude-haiku-4-5", "max_tokens": 20,
                                                              "messages": msgs}) == 200
            upstreams.openai.fail_next(503)
            assert await post(http, chat, {"model": "smart", "messages": msgs}) == 200
        async with asyncio.timeout(WAIT):
            while True:
                await sc.store.flush()
                rows = await asyncio.to_thread(sc.store.recent, 100)
                if len(rows) == 4:
                    break
                await asyncio.sleep(0.02)
    finally:
        async with asyncio.timeout(WAIT + 20):
            await runner.cleanup()  # type: ignore[attr-defined]  # flushes the exporters
    return rows


async def test_spans_and_metrics_arrive_over_grpc(upstreams: Upstreams, tmp_path: Path,
                                                  collector: GrpcCollector) -> None:
    rows = await run_traffic(upstreams, tmp_path, {
        "endpoint": collector.endpoint, "protocol": "grpc", "service_name": "grpc-sidecar",
        "headers": {"X-Collector-Token": TOKEN}})

    spans = collector.spans()
    assert len(spans) == len(rows) == 4
    by_id = {attrs["sidecar.request_id"]: (span, attrs, resource) for span, attrs, resource in spans}
    assert set(by_id) == {r["id"] for r in rows}
    for r in rows:
        span, attrs, resource = by_id[r["id"]]
        assert resource["service.name"] == "grpc-sidecar"
        assert span.name == f"chat {r['requested_model']}" and span.kind == span.SPAN_KIND_CLIENT
        assert attrs["gen_ai.provider.name"] == r["provider"]
        assert attrs["gen_ai.response.model"] == r["model"]
        assert attrs["gen_ai.usage.input_tokens"] == r["input_tokens"] > 0
        assert attrs["gen_ai.usage.output_tokens"] == r["output_tokens"] > 0
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == r["cache_read_tokens"]
        assert attrs["sidecar.cost_usd"] == r["cost_usd"]
        assert attrs["sidecar.attempts"] == len(r["attempts"])
    smart = next(r for r in rows if r["requested_model"] == "smart")
    assert by_id[smart["id"]][1]["sidecar.attempts"] == 2

    tokens = collector.last_points("gen_ai.client.token.usage")
    for kind in ("input", "output"):
        assert sum(p.sum for a, p in tokens if a["gen_ai.token.type"] == kind) == sum(r[f"{kind}_tokens"] for r in rows)
    durations = collector.last_points("gen_ai.client.operation.duration")
    assert sum(p.count for _, p in durations) == 4
    cost = collector.last_points("sidecar.cost")
    assert sum(p.as_double for _, p in cost) == pytest.approx(sum(r["cost_usd"] for r in rows), rel=1e-9)

    # the collector's own header arrived as (lower-case) gRPC metadata; nothing secret or content left the machine
    assert collector.metadata and all(m.get("x-collector-token") == TOKEN for m in collector.metadata)
    exported = collector.exported_bytes()
    for key in KEYS.values():
        assert key.encode() not in exported
    assert PROMPT.encode() not in exported and b"okapi" not in exported and b"you said" not in exported
    assert TOKEN.encode() not in exported


async def test_a_dead_grpc_collector_never_hurts_requests(upstreams: Upstreams, tmp_path: Path) -> None:
    """Nothing listens at the endpoint: requests still succeed, and shutdown returns within its bound."""
    rows = await run_traffic(upstreams, tmp_path, {"endpoint": "http://127.0.0.1:9", "protocol": "grpc"})
    assert [r["status"] for r in rows] == [200] * 4


def test_grpc_protocol_config_is_validated() -> None:
    assert config_from_dict({"otel": {"endpoint": "http://c:4318"}}).otel.protocol == "http/protobuf"  # type: ignore[union-attr]
    o = config_from_dict({"otel": {"endpoint": "https://collector:4317", "protocol": "grpc"}}).otel
    assert o is not None and o.protocol == "grpc" and o.endpoint == "https://collector:4317"
    for bad, word in [({"endpoint": "http://c:4317", "protocol": "http/json"}, "protocol must be one of"),
                      ({"endpoint": "http://c:4317", "protocol": 4317}, "protocol"),
                      ({"endpoint": "http://c:4317/otlp", "protocol": "grpc"}, "scheme://host:port")]:
        with pytest.raises(ConfigError, match=word):
            config_from_dict({"otel": bad})


def test_grpc_without_its_exporter_is_a_clear_startup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in otel.EXPORTER_MODULES["grpc"]:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    with pytest.raises(otel.OtelUnavailable, match=r"pip install 'llm-sidecar\[otel\]'"):
        build_app(config_from_dict({"otel": {"endpoint": "http://127.0.0.1:4317", "protocol": "grpc"}}),
                  keys=MemoryKeyStore({}))
    # the HTTP transport does not need the gRPC exporter
    build_app(config_from_dict({"otel": {"endpoint": "http://127.0.0.1:4318"}}), keys=MemoryKeyStore({}))
