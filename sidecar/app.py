"""Building the aiohttp application: inbound routes per wire format, the control API, lifetimes.

`build_app` takes its edges (key store, request store, event bus) as arguments so tests and the demo can
inject an in-memory key store or a temporary database, and the real CLI passes the OS keyring.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web

from sidecar import access, control, control_providers, formats, latency_stats, metrics, notices
from sidecar.config import Config
from sidecar.events import EventBus
from sidecar.keys import KeyCache, KeyStore
from sidecar.limits import RequestLimits
from sidecar.models import ModelCatalog, anthropic_shape, gemini_shape, openai_shape
from sidecar.pricing import PriceBook, load_catalog
from sidecar.proxy import Proxy
from sidecar.state import STATE, SidecarState
from sidecar.store import RequestStore
from sidecar.tokens import TokenCache
from sidecar.upstream import make_session

MAX_BODY = RequestLimits().max_body_bytes
"""The default ``[limits] max_body_mb``: base64 images and PDFs; aiohttp's 1 MiB default would refuse them."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
routes = web.RouteTableDef()
ACCESS = web.AppKey("sidecar_access", access.Access)
"""The app's access rules; ``app[ACCESS].internal_tokens`` holds tokens known only to this process."""


def _proxy(request: web.Request) -> Proxy:
    proxy = request.app[STATE].proxy
    assert isinstance(proxy, Proxy)
    return proxy


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _proxy(request).handle(request, "openai_chat")


@routes.post("/v1/responses")
async def responses(request: web.Request) -> web.StreamResponse:
    return await _proxy(request).handle(request, "openai_responses")


@routes.post("/v1/messages")
async def messages(request: web.Request) -> web.StreamResponse:
    return await _proxy(request).handle(request, "anthropic")


@routes.post("/v1beta/models/{tail:.+}")
@routes.post("/v1/models/{tail:.+}")
async def gemini_generate(request: web.Request) -> web.StreamResponse:
    """Gemini's generateContent, under both API versions the SDKs use (v1beta by default, v1 on request)."""
    model, _, method = request.match_info["tail"].rpartition(":")
    if method not in ("generateContent", "streamGenerateContent") or not model:
        body = formats.module("gemini").error_body(404, f"unsupported method {method!r}; the sidecar serves "
                                                        "generateContent and streamGenerateContent")
        return web.Response(status=404, body=body, content_type="application/json")
    return await _proxy(request).handle(
        request, "gemini", path_model=model.removeprefix("models/"), path_stream=method == "streamGenerateContent"
    )


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    catalog = request.app[STATE].catalog
    assert isinstance(catalog, ModelCatalog)
    models = await catalog.list()
    anthropic_client = "anthropic-version" in request.headers or "x-api-key" in request.headers
    shape = anthropic_shape(models) if anthropic_client else openai_shape(models)
    return web.Response(body=orjson.dumps(shape), content_type="application/json")


@routes.get("/v1beta/models")
async def list_models_gemini(request: web.Request) -> web.Response:
    catalog = request.app[STATE].catalog
    assert isinstance(catalog, ModelCatalog)
    return web.Response(body=orjson.dumps(gemini_shape(await catalog.list())), content_type="application/json")


def _format_for_path(path: str) -> str:
    if path.startswith("/v1beta") or path.endswith("generateContent"):
        return "gemini"
    if path.startswith("/v1/messages"):
        return "anthropic"
    return "openai_chat"


def gateway(rules: access.Access) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The app's one middleware: access control first (`access.admit`), then the caller's own error format for
    aiohttp's 404/405/413 pages, which are HTML-ish text where clients expect their API's JSON error shape."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = access.admit(rules, request)
        if refused is not None:
            return refused
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = {404: f"no such endpoint: {request.method} {request.path}",
                       405: f"method {request.method} not allowed on {request.path}"}.get(exc.status, exc.reason)
            body = formats.module(_format_for_path(request.path)).error_body(exc.status, message)
            return web.Response(status=exc.status, body=body, content_type="application/json")

    return gate


def build_app(
    config: Config,
    *,
    keys: KeyStore,
    store: RequestStore | None = None,
    bus: EventBus | None = None,
    listen_url: str = "",
) -> web.Application:
    """The proxy application. ``store`` is opened and closed with the app when given."""
    rules = access.Access(config, TokenCache(config.data_dir), _format_for_path)
    app = web.Application(client_max_size=config.limits.max_body_bytes,
                          middlewares=[gateway(rules)])
    state = SidecarState(config=config, keys=KeyCache(keys), bus=bus or EventBus(), store=store,
                         listen_url=listen_url)
    app[STATE] = state
    app[ACCESS] = rules
    if config.allowed_origins:  # else every Origin is refused and no response needs CORS headers: no hook, which
        app.on_response_prepare.append(access.add_cors_headers)  # aiohttp would await for every response
    app.add_routes(routes)
    app.add_routes(control.routes)
    app.add_routes(control_providers.routes)  # GET /_sidecar/providers/{id}: the TUI's provider pages
    app.add_routes(latency_stats.routes)  # GET /_sidecar/latency: the TUI's Latency view
    metrics.install(app, state.bus)  # GET /metrics; app[metrics.METRICS].gauge_providers is the extension point
    notices.install(app, state)  # sidecar log warnings and budget crossings as `notice` events; GET /_sidecar/notices
    if config.otel is not None:  # optional OTLP export; raises OtelUnavailable (a ConfigError) without the SDK
        from sidecar import otel

        otel.install(app, state.bus, config.otel, {pid: p.adapter for pid, p in config.providers.items()})
    app.cleanup_ctx.append(_lifetime)
    return app


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    if state.store is not None:
        loop = asyncio.get_running_loop()  # writability changes come from the store's writer thread
        state.store.on_health_change = lambda h: loop.call_soon_threadsafe(state.bus.publish, "store", h)
        state.store.set_backlog_limit(state.config.store_backlog)
        state.store.open()
    session = make_session(connect_timeout=state.config.timeouts.connect)
    # A catalog saved by `sidecar prices update` takes ~0.3 s to parse: off the loop, before serving.
    catalog = await asyncio.to_thread(load_catalog, state.config.data_dir)
    prices = PriceBook(state.config.providers, state.config.prices, catalog=catalog)
    state.proxy = Proxy(state.config, keys=state.keys, bus=state.bus, store=state.store, prices=prices, session=session)
    state.catalog = ModelCatalog(state.config, state.keys, session)
    try:
        yield
    finally:
        await session.close()
        if state.store is not None:
            await state.store.flush()
            state.store.close()
