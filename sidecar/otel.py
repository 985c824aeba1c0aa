"""Optional OpenTelemetry export: one span and a few metrics per request, GenAI semantic conventions, over OTLP.

Off unless the config has an ``[otel]`` section. The SDK (``opentelemetry-sdk`` and the OTLP exporter for the
configured ``protocol``: ``opentelemetry-exporter-otlp-proto-http`` or ``-grpc``, both in the ``otel`` extra) is
imported only then, so the proxy starts without it; configured but missing, `install` raises `OtelUnavailable`
(a `ConfigError`) at startup with the ``pip install 'llm-sidecar[otel]'`` line.

Transport: ``protocol = "http/protobuf"`` (the default) posts to ``{endpoint}/v1/traces`` and ``/v1/metrics``;
``protocol = "grpc"`` calls the collector's TraceService / MetricsService at ``host:port`` (TLS for https://).
Everything else — what is exported, threads, shutdown — is the same for both.

How it runs: an `EventBus` listener, like ``/metrics``. On each ``request_finished`` it starts and ends one span
with the record's own times and records three metric instruments — a handful of in-memory appends. Export
happens off the event loop, in the SDK's own threads (`BatchSpanProcessor`, `PeriodicExportingMetricReader`),
so a slow or dead collector never stalls a request; the listener swallows and logs its own failures. App
cleanup flushes and shuts both down (in a worker thread, so the loop keeps serving meanwhile).

The providers are private to the app (never the process-global ones), so two apps in one process — tests, the
demo — do not share or double-count.

What is exported (`span_attributes`): ``gen_ai.operation.name=chat``, ``gen_ai.provider.name`` and the older
``gen_ai.system``, requested and response model, token usage (``gen_ai.usage.input_tokens``/``output_tokens``,
``cache_read.input_tokens``, ``cache_creation.input_tokens``, ``reasoning.output_tokens``), ``error.type``
(the HTTP status, or a fixed word — never the error text, which can quote the provider), and ``sidecar.*``
extras: cost, inbound format, attempts, client label, stream, usage source, request id. Never prompt or
response content, never key material, never the error message.

Metrics: ``gen_ai.client.token.usage`` (histogram, ``{token}``, ``gen_ai.token.type`` = input | output),
``gen_ai.client.operation.duration`` (histogram, seconds) and ``sidecar.cost`` (counter, USD). Their model
attributes are capped like ``/metrics``'s labels (model names are client-influenced).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiohttp import web

from sidecar import __version__
from sidecar.config import ConfigError, Otel
from sidecar.events import Event, EventBus
from sidecar.metrics import MAX_MODEL_LABELS, NONE, OTHER

log = logging.getLogger("sidecar.otel")

COMMON_MODULES = (
    "opentelemetry.context",
    "opentelemetry.trace",
    "opentelemetry.sdk.resources",
    "opentelemetry.sdk.trace",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.metrics",
    "opentelemetry.sdk.metrics.export",
)
EXPORTER_MODULES = {  # protocol -> (trace exporter module, metric exporter module)
    "http/protobuf": ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                      "opentelemetry.exporter.otlp.proto.http.metric_exporter"),
    "grpc": ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
             "opentelemetry.exporter.otlp.proto.grpc.metric_exporter"),
}
SDK_MODULES = COMMON_MODULES + EXPORTER_MODULES["http/protobuf"]
"""What the default protocol needs."""
INSTALL_HINT = "pip install 'llm-sidecar[otel]'"
EXPORT_TIMEOUT_S = 5.0
"""Seconds for one export, its retries included (the SDK backs off between tries until this deadline)."""

PROVIDER_NAMES = {
    # gen_ai.provider.name well-known values, by sidecar provider id; then by adapter as a fallback.
    "openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini", "groq": "groq",
    "mistral": "mistral_ai", "deepseek": "deepseek", "xai": "x_ai", "perplexity": "perplexity",
    "cohere": "cohere", "bedrock": "aws.bedrock", "azure": "azure.ai.openai", "vertex": "gcp.vertex_ai",
}
ADAPTER_PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""Both as the GenAI semantic conventions advise."""


class OtelUnavailable(ConfigError):
    """``[otel]`` is configured but the OpenTelemetry SDK / OTLP exporter is not installed."""


def load_sdk(protocol: str = "http/protobuf") -> dict[str, Any]:
    """Import the SDK modules ``protocol`` needs, or raise `OtelUnavailable` naming the install command."""
    modules = {}
    for name in COMMON_MODULES + EXPORTER_MODULES[protocol]:
        try:
            modules[name] = importlib.import_module(name)
        except ImportError as exc:
            raise OtelUnavailable(
                f"[otel] is configured but the OpenTelemetry SDK is not installed ({name} is missing): "
                f"{INSTALL_HINT}, or remove the [otel] section"
            ) from exc
    return modules


def provider_name(provider: str | None, adapter: str | None) -> str:
    if not provider:
        return NONE
    return PROVIDER_NAMES.get(provider) or ADAPTER_PROVIDER_NAMES.get(adapter or "", provider)


def error_type(rec: dict[str, Any]) -> str | None:
    """Low-cardinality and content-free: the status code when it is an error, else a fixed word."""
    status, error = rec.get("status"), rec.get("error")
    if isinstance(status, int) and status >= 400:
        return str(status)
    if not error:
        return None
    if error == "client disconnected":
        return "client_disconnected"
    if error.startswith("internal sidecar error"):
        return "internal_error"
    return "stream_error" if rec.get("stream") else "_OTHER"


def span_attributes(rec: dict[str, Any], adapter: str | None) -> dict[str, Any]:
    """The span's attributes for one request record (a `RequestRecord.to_dict()`)."""
    system = provider_name(rec.get("provider"), adapter)
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": system,
        "gen_ai.system": system,
        "gen_ai.request.model": rec.get("requested_model") or "",
        "sidecar.inbound": rec.get("inbound") or NONE,
        "sidecar.attempts": len(rec.get("attempts") or ()),
        "sidecar.stream": bool(rec.get("stream")),
        "sidecar.request_id": rec.get("id") or "",
    }
    optional = {
        "gen_ai.response.model": rec.get("model"),
        "sidecar.provider": rec.get("provider"),
        "gen_ai.usage.input_tokens": rec.get("input_tokens"),
        "gen_ai.usage.output_tokens": rec.get("output_tokens"),
        "gen_ai.usage.cache_read.input_tokens": rec.get("cache_read_tokens"),
        "gen_ai.usage.cache_creation.input_tokens": rec.get("cache_write_tokens"),
        "gen_ai.usage.reasoning.output_tokens": rec.get("reasoning_tokens"),
        "sidecar.cost_usd": rec.get("cost_usd"),
        "sidecar.usage_source": rec.get("usage_source"),
        "sidecar.client": rec.get("client"),
        "http.response.status_code": rec.get("status"),
        "error.type": error_type(rec),
    }
    attrs.update({k: v for k, v in optional.items() if v is not None})
    return attrs


def _epoch_ns(ts: str | None) -> int | None:
    if not ts:
        return None
    try:
        return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1_000_000_000)
    except ValueError:
        return None


class OtelExporter:
    """Owns a private TracerProvider and MeterProvider; `on_event` is the bus listener."""

    def __init__(self, settings: Otel, adapters: dict[str, str], sdk: dict[str, Any]) -> None:
        self.settings = settings
        self.adapters = adapters
        self._models: set[str] = set()
        self._empty_context = sdk["opentelemetry.context"].Context()
        self._trace_api = sdk["opentelemetry.trace"]
        resource = sdk["opentelemetry.sdk.resources"].Resource.create(
            {"service.name": settings.service_name, "service.version": __version__})
        self.tracer_provider = self.meter_provider = None
        self.tracer = None
        if settings.traces:
            exporter = _exporter(settings, sdk, "traces")
            self.tracer_provider = sdk["opentelemetry.sdk.trace"].TracerProvider(resource=resource)
            self.tracer_provider.add_span_processor(sdk["opentelemetry.sdk.trace.export"].BatchSpanProcessor(exporter))
            self.tracer = self.tracer_provider.get_tracer("sidecar", __version__)
        if settings.metrics:
            exporter = _exporter(settings, sdk, "metrics")
            reader = sdk["opentelemetry.sdk.metrics.export"].PeriodicExportingMetricReader(
                exporter, export_interval_millis=settings.export_interval_s * 1000,
                export_timeout_millis=EXPORT_TIMEOUT_S * 1000)
            self.meter_provider = sdk["opentelemetry.sdk.metrics"].MeterProvider(
                resource=resource, metric_readers=[reader])
            meter = self.meter_provider.get_meter("sidecar", __version__)
            self.token_usage = meter.create_histogram(
                "gen_ai.client.token.usage", unit="{token}", description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS))
            self.duration = meter.create_histogram(
                "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS))
            self.cost = meter.create_counter(
                "sidecar.cost", unit="USD", description="Cost of priced requests in US dollars.")

    # ------------------------------------------------------------------------------------------- events

    def on_event(self, event: Event) -> None:
        """The bus listener: never raises into the proxy, never blocks (the SDK only queues here)."""
        if event.type != "request_finished":
            return
        try:
            self._finished(event.data)
        except Exception:
            log.exception("OpenTelemetry export of request %s failed", event.data.get("id"))

    def _finished(self, rec: dict[str, Any]) -> None:
        adapter = self.adapters.get(rec.get("provider") or "")
        attrs = span_attributes(rec, adapter)
        latency_ms = rec.get("latency_ms")
        if self.tracer is not None:
            start = _epoch_ns(rec.get("ts"))
            end = start + int(latency_ms * 1_000_000) if start is not None and isinstance(
                latency_ms, (int, float)) else None
            model = rec.get("requested_model") or rec.get("model") or ""
            span = self.tracer.start_span(f"chat {model}".strip(), context=self._empty_context,
                                          kind=self._trace_api.SpanKind.CLIENT, attributes=attrs, start_time=start)
            if "error.type" in attrs:
                span.set_status(self._trace_api.Status(self._trace_api.StatusCode.ERROR, attrs["error.type"]))
            span.end(end_time=end)
        if self.meter_provider is not None:
            metric_attrs = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": attrs["gen_ai.provider.name"],
                "gen_ai.system": attrs["gen_ai.system"],
                "gen_ai.request.model": self._model(rec.get("requested_model")),
                "gen_ai.response.model": self._model(rec.get("model")),
                "sidecar.inbound": attrs["sidecar.inbound"],
            }
            for kind in ("input", "output"):
                n = rec.get(f"{kind}_tokens")
                if isinstance(n, int):
                    self.token_usage.record(n, {**metric_attrs, "gen_ai.token.type": kind})
            if isinstance(latency_ms, (int, float)):
                duration_attrs = dict(metric_attrs)
                if "error.type" in attrs:
                    duration_attrs["error.type"] = attrs["error.type"]
                self.duration.record(latency_ms / 1000, duration_attrs)
            cost = rec.get("cost_usd")
            if isinstance(cost, (int, float)) and cost >= 0:
                self.cost.add(cost, metric_attrs)

    def _model(self, model: str | None) -> str:
        if not model:
            return NONE
        if model in self._models:
            return model
        if len(self._models) >= MAX_MODEL_LABELS:
            return OTHER
        self._models.add(model)
        return model

    # ------------------------------------------------------------------------------------------- shutdown

    def shutdown(self) -> None:
        """Flush what is queued and stop the export threads. Blocking: call it from a worker thread.

        Traces and metrics shut down side by side, so a dead collector costs at most about one export
        timeout (`EXPORT_TIMEOUT_S`, retries included) at exit, not one per signal."""
        def stop(name: str, provider: Any) -> None:
            try:
                provider.shutdown()
            except Exception:
                log.exception("OpenTelemetry %s shutdown failed", name)

        threads = [threading.Thread(target=stop, args=(name, provider), name=f"otel-{name}-shutdown", daemon=True)
                   for name, provider in (("traces", self.tracer_provider), ("metrics", self.meter_provider))
                   if provider is not None]
        for t in threads:
            t.start()
        for t in threads:
            t.join(EXPORT_TIMEOUT_S + 5)


def _exporter(settings: Otel, sdk: dict[str, Any], signal: str) -> Any:
    """The OTLP exporter for ``signal`` (traces | metrics) over the configured protocol.

    Settings are passed explicitly so the config wins over ``OTEL_EXPORTER_OTLP_*`` variables. gRPC metadata
    keys must be lower-case (grpcio refuses others), so header names are lowered for it; HTTP keeps them."""
    trace_module, metric_module = EXPORTER_MODULES[settings.protocol]
    module = sdk[trace_module if signal == "traces" else metric_module]
    cls = module.OTLPSpanExporter if signal == "traces" else module.OTLPMetricExporter
    if settings.protocol == "grpc":
        return cls(endpoint=settings.endpoint, insecure=settings.endpoint.startswith("http://"),
                   headers=tuple((k.lower(), v) for k, v in settings.headers.items()), timeout=EXPORT_TIMEOUT_S)
    return cls(endpoint=f"{settings.endpoint}/v1/{signal}", headers=dict(settings.headers), timeout=EXPORT_TIMEOUT_S)


OTEL = web.AppKey("sidecar_otel", OtelExporter)


def install(app: web.Application, bus: EventBus, settings: Otel, adapters: dict[str, str]) -> None:
    """Check the SDK is importable now (a clear startup error if not); export while the app runs.

    ``adapters`` maps provider id → adapter, for ``gen_ai.provider.name`` of custom providers.
    """
    sdk = load_sdk(settings.protocol)

    async def exporting(_app: web.Application) -> AsyncIterator[None]:
        exporter = OtelExporter(settings, adapters, sdk)
        app[OTEL] = exporter
        bus.add_listener(exporter.on_event)
        log.info("OpenTelemetry export to %s over %s (traces %s, metrics %s)", settings.endpoint, settings.protocol,
                 "on" if settings.traces else "off", "on" if settings.metrics else "off")
        try:
            yield
        finally:
            bus.remove_listener(exporter.on_event)
            await asyncio.to_thread(exporter.shutdown)

    app.cleanup_ctx.append(exporting)
