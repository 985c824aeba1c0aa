"""``GET /_sidecar/providers/{provider}``: one provider's page, as model-catalog sites show providers.

One answer with six sections, so the TUI's provider page is one call:

- ``overview`` — adapter, base URL, whether a key is in the keyring (yes/no, never the key; ``?refresh=1`` reads
  the keyring afresh)
- ``models``   — the provider's own model list, fetched through the proxy's pooled upstream session with the
  provider's key, cached for `MODELS_TTL` (``?refresh=1`` skips the cache); a failure is an ``error`` string
- ``pricing``  — per model, USD per million tokens per meter as the sidecar charges it (`sidecar.pricing`:
  the genai-prices catalog, or a ``[prices]`` override), with its source; for the listed models, or the
  catalog's models of this provider while the list is unavailable
- ``limits``   — the latest rate-limit headers the provider sent (`sidecar.ratelimits`), or null
- ``features`` — streaming, tools, structured output, vision: derived by asking this adapter's codec to build
  each kind of request, so the page says what the sidecar can actually send, not what a table claims
- ``health``   — the breaker, cool-down, error rate and latency row of ``/_sidecar/stats``, or null

An unknown provider is a 404 in the control API's JSON error shape.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from adapters.ir import ChatRequest, ImagePart, Message, ResponseFormat, TextPart, Tool, TranslationError
from adapters.presets import AUTH_HEADERS, PRESETS, ProviderPreset
from sidecar import formats
from sidecar.keys import KeyCache, KeyStoreError
from sidecar.models import LIST_TIMEOUT, _entry, _raw_models
from sidecar.pricing import PriceBook
from sidecar.redact import scrub_text
from sidecar.state import STATE, SidecarState
from sidecar.upstream import forward_headers, models_url
from sidecar.util import utc_now_iso

routes = web.RouteTableDef()

MODELS_TTL = 60.0
"""Seconds a provider's model list (and the prices worked out for it) is reused: the page refreshes every few
seconds while open, and providers rate-limit their model-list endpoints too."""
MAX_ERROR_CHARS = 300


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _bad(message: str, status: int) -> web.Response:
    return _json({"error": {"message": message, "type": "invalid_request_error"}}, status)


@routes.get("/_sidecar/providers/{provider}")
async def provider_page(request: web.Request) -> web.Response:
    state = request.app[STATE]
    pid = request.match_info["provider"]
    provider = state.config.providers.get(pid)
    if provider is None:
        return _bad(f"no provider {pid[:100]!r} in the configuration", 404)
    proxy = state.proxy
    if proxy is None:
        return _bad("the proxy is not running yet", 503)
    refresh = request.query.get("refresh", "") in ("1", "true", "yes")
    if refresh:
        state.keys.invalidate(pid)  # `r` in the TUI: ask the keyring itself, as `/_sidecar/keys` does
    overview, listing = await asyncio.gather(
        _overview(state, provider),
        _pages(request.app).listing(provider, state.keys, proxy.session, proxy.prices,  # type: ignore[attr-defined]
                                    _extra_models(state, proxy, pid), refresh=refresh),
    )
    return _json({
        "id": pid,
        "overview": overview,
        "models": {"models": listing.models, "error": listing.error, "fetched_at": listing.fetched_at},
        "pricing": {"catalog": proxy.prices.source, "models": listing.prices,  # type: ignore[attr-defined]
                    "unpriced": listing.unpriced},
        "limits": proxy.health.ratelimits.latest(pid),  # type: ignore[attr-defined]
        "features": features(provider),
        "health": proxy.health.snapshot_one(pid),  # type: ignore[attr-defined]
    })


# --- overview ---------------------------------------------------------------------------------------


async def _overview(state: SidecarState, provider: ProviderPreset) -> dict[str, Any]:
    """Whether the proxy has a key for this provider, as it will use it: through its key cache (the keyring read
    in a thread, at most every 30 s, so a page refreshing every few seconds does not poll the keyring)."""
    has_key: bool | None = None
    key_error = None
    if provider.needs_key:
        try:
            has_key = bool(await state.keys.get(provider.id))
        except KeyStoreError as exc:
            key_error = str(exc)  # says which backend and how to fix it; never holds a key
    preset = PRESETS.get(provider.id)
    return {
        "id": provider.id,
        "adapter": provider.adapter,
        "wire_format": formats.UPSTREAM_FORMAT[provider.adapter],
        "base_url": provider.base_url,
        "models_url": models_url(provider),
        "needs_key": provider.needs_key,
        "has_key": has_key,
        "key_error": key_error,
        "auth_header": AUTH_HEADERS[provider.adapter] if provider.needs_key else None,
        "origin": "custom" if preset is None else "built-in" if preset == provider else "built-in, overridden",
        "responses_api": provider.responses_api if provider.adapter == "openai" else None,
        "stream_usage": provider.stream_usage if provider.adapter == "openai" else None,
        "model_prefixes": list(provider.model_prefixes),
    }


# --- models and their prices ------------------------------------------------------------------------


class ModelListError(Exception):
    """Why a provider's model list could not be had; the message is shown as is (no key in it)."""


async def fetch_models(session: aiohttp.ClientSession, keys: KeyCache,
                       provider: ProviderPreset) -> list[dict[str, Any]]:
    """The provider's model list, asked the way ``GET /v1/models`` asks it (`sidecar.models`: same URL, headers,
    key and parsing), but saying why when it fails instead of leaving the provider out."""
    key = None
    if provider.needs_key:
        try:
            key = await keys.get(provider.id)
        except KeyStoreError as exc:
            raise ModelListError(str(exc)) from None
        if not key:
            raise ModelListError(f"no key in the keyring: `sidecar keys set {provider.id}`")
    secret = key.encode() if key else None
    try:
        headers = forward_headers({}, provider, key)
        async with session.get(models_url(provider), headers=headers, timeout=LIST_TIMEOUT) as resp:
            data = await resp.read()
            if resp.status != 200:
                said = formats.module(formats.UPSTREAM_FORMAT[provider.adapter]).error_message(data)
                said = scrub_text(said, secret)  # some providers echo request headers in errors
                raise ModelListError(f"HTTP {resp.status}" + (f": {said[:MAX_ERROR_CHARS]}" if said else ""))
        body = orjson.loads(data)
    except TimeoutError:
        raise ModelListError(f"no answer from {provider.base_url} within {LIST_TIMEOUT.total:g}s") from None
    except (aiohttp.ClientError, OSError) as exc:
        text = scrub_text(str(exc), secret) or type(exc).__name__
        raise ModelListError(f"cannot reach {provider.base_url}: {text[:MAX_ERROR_CHARS]}") from None
    except orjson.JSONDecodeError:
        raise ModelListError("the model list is not JSON") from None
    return sorted((_entry(provider.id, m) for m in _raw_models(provider.adapter, body)), key=lambda m: m["model"])


@dataclass(slots=True)
class Listing:
    models: list[dict[str, Any]]
    error: str | None
    fetched_at: str
    prices: list[dict[str, Any]] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    priced_for: frozenset[str] = frozenset()
    expires: float = 0.0


class ProviderPages:
    """Per app: each provider's model listing and prices, reused for `MODELS_TTL` seconds."""

    def __init__(self) -> None:
        self._listings: dict[str, Listing] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def listing(self, provider: ProviderPreset, keys: KeyCache, session: aiohttp.ClientSession,
                      prices: PriceBook, extra: set[str], *, refresh: bool = False) -> Listing:
        async with self._locks.setdefault(provider.id, asyncio.Lock()):  # one fetch at a time per provider
            cached = self._listings.get(provider.id)
            if cached is None or refresh or cached.expires <= time.monotonic():
                try:
                    cached = Listing(await fetch_models(session, keys, provider), None, utc_now_iso())
                except ModelListError as exc:
                    cached = Listing([], str(exc), utc_now_iso())
                cached.expires = time.monotonic() + MODELS_TTL
                self._listings[provider.id] = cached
            listed = [m["model"] for m in cached.models] if cached.error is None else catalog_models(prices, provider)
            wanted = frozenset(listed) | extra
            if wanted != cached.priced_for:
                # The first pricing of ~200 models takes tens of ms of catalog lookups: off the event loop.
                cached.prices, cached.unpriced = await asyncio.to_thread(price_rows, prices, provider.id, wanted)
                cached.priced_for = wanted
            return cached


_PAGES: weakref.WeakKeyDictionary[web.Application, ProviderPages] = weakref.WeakKeyDictionary()


def _pages(app: web.Application) -> ProviderPages:
    """Kept beside the app rather than in it: aiohttp freezes an app's state once it runs."""
    pages = _PAGES.get(app)
    if pages is None:
        pages = _PAGES[app] = ProviderPages()
    return pages


def _extra_models(state: SidecarState, proxy: Any, pid: str) -> set[str]:
    """Models worth a price row even when the list does not name them: overridden, or already called."""
    prefix = f"{pid}/"
    extra = {ref.removeprefix(prefix) for ref in state.config.prices if ref.startswith(prefix)}
    row = proxy.health.snapshot_one(pid)
    return extra | set(row["ttft_ms_ewma"]) if row else extra


def catalog_models(prices: PriceBook, provider: ProviderPreset) -> list[str]:
    """The models the price catalog knows for this provider: the Pricing tab's rows while the provider's own
    list is unavailable (no key yet, provider down), so prices can be read before the first request."""
    catalog_id = provider.genai_prices_id or provider.id
    for entry in prices.catalog.snapshot.providers:
        if entry.id == catalog_id:
            return [m.id for m in entry.models]
    return []


def price_rows(prices: PriceBook, pid: str,
               models: frozenset[str] | set[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Rates per model in USD per million tokens, and the models with no price (their cost shows as unknown).

    Read from the sidecar's own `PriceBook`, so the page shows what requests are charged: an override wins over
    the catalog, and a cache meter with no rate of its own is charged (and shown) at the input rate. ``tiers``
    lists the catalog's higher rates for long prompts (the row's rates are the base ones)."""
    rows, unpriced = [], []
    for model in sorted(models):
        rates = prices.describe(pid, model)
        if rates is None:
            unpriced.append(model)
            continue
        row = {"model": model, "source": "override" if rates["kind"] == "override" else "catalog",
               "input": rates["input"], "output": rates["output"],
               "cache_read": rates["input"] if rates["cache_read"] is None else rates["cache_read"],
               "cache_write": rates["input"] if rates["cache_write"] is None else rates["cache_write"],
               "tiers": rates["tiers"], "tiered": bool(rates["tiers"]), "note": rates.get("note")}
        rows.append(row)
    return rows, unpriced


# --- features ---------------------------------------------------------------------------------------

_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
"""A 1×1 PNG: enough for a codec to show how (and whether) it sends an image."""


def features(provider: ProviderPreset) -> list[dict[str, Any]]:
    """``[{name, supported, detail}]`` for streaming, tools, structured output and vision."""
    rows = [dict(r) for r in _codec_features(provider.adapter)]
    if provider.adapter == "openai":
        rows[0]["detail"] += ("; usage asked for with stream_options.include_usage" if provider.stream_usage else
                              "; this provider takes no stream_options, so stream usage may be estimated")
    return rows


@functools.cache
def _codec_features(adapter: str) -> tuple[dict[str, Any], ...]:
    """Ask the adapter's codec to build a plain request and one with each feature; the fields a feature adds are
    how it reaches the provider, and a `TranslationError` means it cannot."""
    fmt = formats.UPSTREAM_FORMAT[adapter]
    codec = formats.codec(fmt)
    source = f"adapters/{fmt}_codec"
    base = _build(codec)
    assert isinstance(base, dict)
    user = [Message("user", [TextPart("probe"), ImagePart(data=_PNG, media_type="image/png")])]
    probes = {
        "tools": _build(codec, tools=[Tool("probe")]),
        "structured_output": _build(codec, response_format=ResponseFormat(
            "json_schema", {"type": "object", "properties": {}}, name="probe")),
        "vision": _build(codec, messages=user),
    }
    streaming = hasattr(codec, "StreamDecoder")
    rows = [{"name": "streaming", "supported": streaming,
             "detail": f"{fmt} streams decoded by {source}" if streaming else f"{source} has no stream decoder"}]
    for name, body in probes.items():
        if isinstance(body, str):
            rows.append({"name": name, "supported": False, "detail": body})
            continue
        changed = [k for k in body if body[k] != base.get(k)]
        detail = f"sent as {', '.join(changed)} by {source}"
        if name == "vision":
            detail = ("images sent inline" + (", image URLs as URLs" if codec.ACCEPTS_IMAGE_URLS else
                                              ", image URLs fetched and inlined by the sidecar")
                      + "; whether a model reads images is up to the model")
        rows.append({"name": name, "supported": bool(changed), "detail": detail})
    return tuple(rows)


def _build(codec: Any, **fields: Any) -> dict[str, Any] | str:
    fields.setdefault("messages", [Message("user", [TextPart("probe")])])
    try:
        body, _ = codec.build_request(ChatRequest("probe-model", **fields), "probe-model")
    except TranslationError as exc:
        return exc.message
    return body
