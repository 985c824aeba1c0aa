"""The control API under ``/_sidecar/``: what the TUI and scripts read.

- ``GET /_sidecar/health``       — liveness, version, providers and whether each has a key, store writability
- ``GET /_sidecar/events``       — live events as server-sent events (``event: <type>``, JSON data)
- ``GET /_sidecar/notices``      — the sidecar's own recent warnings and notices, newest first (sidecar/notices.py)
- ``GET /_sidecar/requests``     — history, newest first: ``?limit=N&before=<id>`` (keyset pagination)
- ``GET /_sidecar/requests/{id}`` — one record with its (redacted, capped) bodies
- ``GET /_sidecar/stats``        — totals by provider and model, ``?since=<ISO 8601>``
- ``POST /_sidecar/pause``       — the emergency brake: every generation request gets a 503 until resumed
- ``POST /_sidecar/resume``      — lets traffic through again (so does a restart: the state is in memory)
- ``GET /_sidecar/budgets``      — each configured cap with spend so far and when it resets
- ``GET /_sidecar/keys``         — each provider: whether its key is in the keyring and a masked hint
- ``PUT /_sidecar/keys/{provider}``    — store a key (``{"key": "..."}``) in the keyring; answers the hint
- ``DELETE /_sidecar/keys/{provider}`` — remove a provider's key from the keyring

Key writes never echo, log or publish the key: answers and events carry the provider and ``keys.mask()``
only. They are accepted from loopback peers only, so a key never crosses the network in plain HTTP.

Store reads run in a thread: SQLite must never block the event loop the proxy runs on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from sidecar import __version__
from sidecar.keys import KeyStoreError, mask
from sidecar.state import STATE
from sidecar.util import utc_now_iso

routes = web.RouteTableDef()

PING_SECONDS = 15.0
MAX_LIMIT = 1000


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _bad(message: str, status: int = 400) -> web.Response:
    return _json({"error": {"message": message, "type": "invalid_request_error"}}, status)


@routes.get("/_sidecar/health")
async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    providers = []
    for p in state.config.providers.values():
        has_key: bool | None = None
        if p.needs_key:
            try:
                has_key = bool(await state.keys.get(p.id))
            except KeyStoreError:
                has_key = None  # unknown: the keyring itself is unavailable
        providers.append({"id": p.id, "adapter": p.adapter, "base_url": p.base_url,
                          "needs_key": p.needs_key, "has_key": has_key})
    return _json({
        "status": "ok",
        "version": __version__,
        "started_at": state.started_at,
        "uptime_s": round(time.monotonic() - state.started_monotonic, 3),
        "listen": state.listen_url,
        "store": str(state.config.db_path) if state.store else None,
        "store_health": state.store.health() if state.store else None,  # writable? records held in memory
        "paused": bool(getattr(state.proxy, "paused", False)),
        "providers": providers,
    })


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    state = request.app[STATE]
    if state.proxy is None:
        return _bad("the proxy is not running yet", 503)
    was = state.proxy.paused  # type: ignore[attr-defined]
    state.proxy.paused = paused  # type: ignore[attr-defined]
    if was != paused:
        logging.getLogger("sidecar").warning("sidecar %s via the control API", "paused" if paused else "resumed",
                                             extra={"notice": "paused" if paused else "resumed"})
        state.bus.publish("paused" if paused else "resumed", {"ts": utc_now_iso()})
    return _json({"paused": paused, "changed": was != paused})


@routes.post("/_sidecar/pause")
async def pause(request: web.Request) -> web.Response:
    return await _set_paused(request, True)


@routes.post("/_sidecar/resume")
async def resume(request: web.Request) -> web.Response:
    return await _set_paused(request, False)


@routes.get("/_sidecar/budgets")
async def budgets(request: web.Request) -> web.Response:
    """Every configured cap, its spend so far (this process's in-memory view) and its reset time."""
    from sidecar.budgets import budget_status

    state = request.app[STATE]
    if state.proxy is None:
        return _bad("the proxy is not running yet", 503)
    return _json(budget_status(state.config.budgets, state.proxy.budgets))  # type: ignore[attr-defined]


@routes.get("/_sidecar/events")
async def events(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    sub = state.bus.subscribe()
    try:
        hello = {"version": __version__, "server_time": utc_now_iso()}
        await response.write(b"event: hello\ndata: " + orjson.dumps(hello) + b"\n\n")
        while True:
            try:
                event = await asyncio.wait_for(sub.get(), PING_SECONDS)
            except TimeoutError:
                await response.write(b": ping\n\n")
                continue
            await response.write(
                b"event: " + event.type.encode() + b"\ndata: " + orjson.dumps(event.data) + b"\n\n"
            )
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the subscriber went away; that costs the proxy nothing
    finally:
        state.bus.unsubscribe(sub)
    return response


@routes.get("/_sidecar/requests")
async def requests(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.store is None:
        return _json({"requests": [], "next_before": None})
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), MAX_LIMIT)
        status = int(request.query["status"]) if "status" in request.query else None
    except ValueError:
        return _bad("limit and status must be integers")
    # Everything finished before this call is in the answer, even if it still sat in the writer's 50 ms batch:
    # a UI that subscribes to events and then loads history must not fall between the two.
    await state.store.flush()
    rows = await asyncio.to_thread(
        state.store.recent, limit, before=request.query.get("before"),
        provider=request.query.get("provider"), model=request.query.get("model"), status=status,
    )
    next_before = rows[-1]["id"] if len(rows) == limit else None
    return _json({"requests": rows, "next_before": next_before})


@routes.get("/_sidecar/requests/{id}")
async def request_detail(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.store is None:
        return _bad("this sidecar runs without a request store", 404)
    row = await asyncio.to_thread(state.store.get, request.match_info["id"])
    if row is None:  # finished a moment ago, still in the writer's 50 ms batch: commit it, then look again
        await state.store.flush()
        row = await asyncio.to_thread(state.store.get, request.match_info["id"])
    if row is None:
        return _bad(f"no request with id {request.match_info['id']!r}", 404)
    return _json(row)


@routes.get("/_sidecar/stats")
async def stats(request: web.Request) -> web.Response:
    """Totals from the store, plus each provider's live health (breaker, cool-down, error rate, latency)."""
    state = request.app[STATE]
    health = state.proxy.health.snapshot() if state.proxy is not None else []  # type: ignore[attr-defined]
    if state.store is None:
        return _json({"providers_health": health})
    try:
        data = await asyncio.to_thread(state.store.stats, request.query.get("since"))
    except ValueError:
        return _bad("since must be an ISO 8601 time, e.g. 2026-01-31T00:00:00Z")
    data["providers_health"] = health
    return _json(data)


# --- provider keys ----------------------------------------------------------------------------

log = logging.getLogger("sidecar.control")
MAX_KEY_CHARS = 4096


def _provider_or_404(request: web.Request) -> tuple[Any, web.Response | None]:
    state = request.app[STATE]
    pid = request.match_info["provider"]
    provider = state.config.providers.get(pid)
    if provider is None:
        return None, _bad(f"no provider {pid[:100]!r} in the configuration", 404)
    return provider, None


def _loopback_peer(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address((request.remote or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _keys_listing(store: Any, providers: list[Any]) -> list[dict[str, Any]]:
    """Runs in a thread: one keyring lookup per provider (each may be a D-Bus round trip)."""
    out = []
    for p in providers:
        has_key: bool | None
        hint: str | None = None
        try:
            secret = store.get(p.id)
            has_key = bool(secret)
            hint = mask(secret) if secret else None
        except KeyStoreError:
            has_key = None  # unknown: the keyring itself is unavailable
        out.append({"provider": p.id, "adapter": p.adapter, "needs_key": p.needs_key,
                    "has_key": has_key, "hint": hint})
    return out


@routes.get("/_sidecar/keys")
async def keys_list(request: web.Request) -> web.Response:
    """Which providers have a key (read fresh from the keyring, not the proxy's cache); never the keys."""
    state = request.app[STATE]
    providers = list(state.config.providers.values())
    return _json({"keys": await asyncio.to_thread(_keys_listing, state.keys.store, providers)})


@routes.put("/_sidecar/keys/{provider}")
async def keys_set(request: web.Request) -> web.Response:
    state = request.app[STATE]
    provider, missing = _provider_or_404(request)
    if missing is not None:
        return missing
    if not _loopback_peer(request):
        return _bad("provider keys can be set only from this machine (a loopback address)", 403)
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _bad('expected a JSON body {"key": "..."}')  # never the body: it may be the key
    secret = body.get("key") if isinstance(body, dict) else None
    if not isinstance(secret, str) or not secret.strip():
        return _bad('expected a JSON body {"key": "..."} with a non-empty key')
    secret = secret.strip()
    if len(secret) > MAX_KEY_CHARS or any(c.isspace() or not c.isprintable() for c in secret):
        return _bad(f"the key must be at most {MAX_KEY_CHARS} printable characters with no spaces")
    try:
        await asyncio.to_thread(state.keys.store.set, provider.id, secret)
    except KeyStoreError as exc:
        return _bad(str(exc), 503)
    finally:
        state.keys.invalidate(provider.id)
    hint = mask(secret)
    log.info("key for provider %s set via the control API", provider.id)
    state.bus.publish("key_changed", {"ts": utc_now_iso(), "provider": provider.id, "action": "set"})
    return _json({"provider": provider.id, "hint": hint})


@routes.delete("/_sidecar/keys/{provider}")
async def keys_delete(request: web.Request) -> web.Response:
    state = request.app[STATE]
    provider, missing = _provider_or_404(request)
    if missing is not None:
        return missing
    if not _loopback_peer(request):
        return _bad("provider keys can be deleted only from this machine (a loopback address)", 403)
    try:
        deleted = await asyncio.to_thread(state.keys.store.delete, provider.id)
    except KeyStoreError as exc:
        return _bad(str(exc), 503)
    finally:
        state.keys.invalidate(provider.id)
    if deleted:
        log.info("key for provider %s deleted via the control API", provider.id)
        state.bus.publish("key_changed", {"ts": utc_now_iso(), "provider": provider.id, "action": "deleted"})
    return _json({"provider": provider.id, "deleted": deleted})
