"""A fake sidecar control API for TUI tests: canned history, a pushable SSE stream, restartable.

Serves exactly the `/_sidecar/*` contract the TUI is built against, on 127.0.0.1 with an OS-picked
port, so feed and app tests exercise real HTTP and real reconnects without the proxy.
"""

from __future__ import annotations

import asyncio
import copy
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from aiohttp import web

_CLOSE = object()


def record(rid: str, ts: str, **over: Any) -> dict[str, Any]:
    """A finished record with every contract field; override what a test cares about."""
    rec: dict[str, Any] = {
        "id": rid, "ts": ts, "inbound": "openai_chat", "provider": "openai", "model": "gpt-4.1",
        "requested_model": "gpt-4.1", "stream": False, "status": 200, "latency_ms": 812.0,
        "ttft_ms": None, "input_tokens": 120, "output_tokens": 30, "cache_read_tokens": 0,
        "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.0012,
        "usage_source": "reported", "error": None, "client": "pytest", "path": "/v1/chat/completions",
        "attempts": [{"provider": "openai", "model": "gpt-4.1", "status": 200, "error": None,
                      "duration_ms": 800.0}],
    }  # fmt: skip
    rec.update(over)
    return rec


class FakeSidecar:
    """In-process control API. `publish()` pushes an event to every open `/events` stream;
    `stop()`/`start()` simulate the sidecar going away and coming back on the same port."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        """History, newest first, as `/requests` returns it."""
        self.bodies: dict[str, dict[str, Any]] = {}
        self.history_loads = 0
        self.port = 0
        self._streams: list[asyncio.Queue[Any]] = []
        self._runner: web.AppRunner | None = None
        self.started_at = ""
        self.providers: list[dict[str, Any]] = [
            {"id": "openai", "adapter": "openai", "base_url": "http://fake", "needs_key": True,
             "has_key": True},
        ]  # fmt: skip
        """`/health`'s `providers`."""
        self.providers_health: list[dict[str, Any]] = []
        """`/stats`'s `providers_health`."""
        self.stats_since: list[str | None] = []
        """The `since` of every `/stats` call, in order."""
        self.keys: dict[str, str] | None = {"openai": "sk-fake-openai-000000000001"}
        """The keyring behind `/keys`: provider -> key; None = the keyring is unavailable."""
        self.key_writes: list[tuple[str, str]] = []
        """(method, provider) of every key write; the keys themselves stay in `keys` only."""
        self.paused = False
        """`/health`'s `paused`, flipped by `POST /pause` and `/resume`."""
        self.budgets: list[dict[str, Any]] = []
        """`/budgets`'s `budgets`; empty = none configured."""
        self.listen: str | None = None
        """`/health`'s `listen` when set (snapshots want a fixed address, not the test's random port)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def subscribers(self) -> int:
        return len(self._streams)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_sidecar/health", self._health)
        app.router.add_get("/_sidecar/events", self._events)
        app.router.add_get("/_sidecar/requests", self._requests)
        app.router.add_get("/_sidecar/requests/{id}", self._request)
        app.router.add_get("/_sidecar/stats", self._stats)
        app.router.add_get("/_sidecar/keys", self._keys)
        app.router.add_put("/_sidecar/keys/{provider}", self._set_key)
        app.router.add_delete("/_sidecar/keys/{provider}", self._delete_key)
        app.router.add_post("/_sidecar/pause", self._pause)
        app.router.add_post("/_sidecar/resume", self._pause)
        app.router.add_get("/_sidecar/budgets", self._budgets)
        return app

    async def start(self) -> None:
        self.started_at = datetime.now(timezone.utc).isoformat()
        self._runner = web.AppRunner(self._app(), handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for q in self._streams:
            q.put_nowait(_CLOSE)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def publish(self, event: str, data: Any) -> None:
        self.send_raw(b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")

    def send_raw(self, chunk: bytes) -> None:
        for q in self._streams:
            q.put_nowait(chunk)

    async def _health(self, request: web.Request) -> web.Response:
        return _json({
            "status": "ok", "version": "0.1.0", "started_at": self.started_at, "uptime_s": 1.0,
            "listen": self.listen or self.url, "providers": self.providers, "paused": self.paused,
        })  # fmt: skip

    async def _keys(self, request: web.Request) -> web.Response:
        rows = []
        for p in self.providers:
            key = None if self.keys is None else self.keys.get(p["id"])
            rows.append({"provider": p["id"], "adapter": p["adapter"], "needs_key": p["needs_key"],
                         "has_key": None if self.keys is None else key is not None,
                         "hint": mask(key) if key else None})  # fmt: skip
        return _json({"keys": rows})

    def _key_target(self, request: web.Request) -> str | web.Response:
        pid = request.match_info["provider"]
        if pid not in {p["id"] for p in self.providers}:
            return _error(404, f"no provider {pid!r}")
        if self.keys is None:
            return _error(503, "keyring (test): the keyring is locked; unlock it.")
        return pid

    async def _set_key(self, request: web.Request) -> web.Response:
        pid = self._key_target(request)
        if isinstance(pid, web.Response):
            return pid
        body = orjson.loads(await request.read())
        key = body.get("key") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key.strip():
            return _error(400, "expected a non-empty key")
        assert self.keys is not None
        self.keys[pid] = key.strip()
        self.key_writes.append(("PUT", pid))
        return _json({"provider": pid, "hint": mask(key.strip())})

    async def _delete_key(self, request: web.Request) -> web.Response:
        pid = self._key_target(request)
        if isinstance(pid, web.Response):
            return pid
        assert self.keys is not None
        self.key_writes.append(("DELETE", pid))
        return _json({"provider": pid, "deleted": self.keys.pop(pid, None) is not None})

    async def _pause(self, request: web.Request) -> web.Response:
        paused = request.path.endswith("/pause")
        changed, self.paused = paused != self.paused, paused
        if changed:
            self.publish("paused" if paused else "resumed", {"ts": datetime.now(timezone.utc).isoformat()})
        return _json({"paused": paused, "changed": changed})

    async def _budgets(self, request: web.Request) -> web.Response:
        return _json({"mode": "block", "budgets": self.budgets})

    async def _stats(self, request: web.Request) -> web.Response:
        """Aggregates `records` with `ts >= since` as the real store does (unpriced usage counted
        apart, a bucket with only unpriced usage has `cost_usd: null`)."""
        since = request.query.get("since")
        self.stats_since.append(since)
        rows = self.records
        if since is not None:
            try:
                lo = _epoch(since)
            except ValueError:
                return web.json_response({"error": "bad since"}, status=400)
            rows = [r for r in rows if _epoch(r["ts"]) >= lo]
        by_p: dict[Any, list[dict[str, Any]]] = {}
        by_m: dict[Any, list[dict[str, Any]]] = {}
        for r in rows:
            by_p.setdefault(r["provider"], []).append(r)
            by_m.setdefault((r["provider"], r["model"]), []).append(r)
        return _json({
            "since": since, "totals": _summarize(rows),
            "by_provider": [{"provider": p, **_summarize(rs)} for p, rs in by_p.items()],
            "by_model": [{"provider": p, "model": m, **_summarize(rs)} for (p, m), rs in by_m.items()],
            "providers_health": self.providers_health,
        })  # fmt: skip

    async def _requests(self, request: web.Request) -> web.Response:
        self.history_loads += 1
        limit = int(request.query.get("limit", "100"))
        return _json({"requests": self.records[:limit], "next_before": None})

    async def _request(self, request: web.Request) -> web.Response:
        rid = request.match_info["id"]
        rec = next((r for r in self.records if r["id"] == rid), None)
        if rec is None:
            return web.json_response({"error": "not found"}, status=404)
        extra = self.bodies.get(rid, {"request_body": None, "response_body": None})
        return _json({**copy.deepcopy(rec), "bodies_truncated": False, **extra})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        q: asyncio.Queue[Any] = asyncio.Queue()
        self._streams.append(q)
        try:
            hello = {"version": "0.1.0", "server_time": self.started_at}
            await resp.write(b"event: hello\ndata: " + orjson.dumps(hello) + b"\n\n: ping\n\n")
            while (chunk := await q.get()) is not _CLOSE:
                await resp.write(chunk)
        finally:
            self._streams.remove(q)
        return resp


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    priced = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
    unpriced = sum(1 for r in rows if r["cost_usd"] is None and (r["input_tokens"] or r["output_tokens"]))
    return {
        "requests": len(rows),
        "errors": sum(1 for r in rows if r["status"] is None or r["status"] >= 400),
        "input_tokens": sum(r["input_tokens"] or 0 for r in rows),
        "output_tokens": sum(r["output_tokens"] or 0 for r in rows),
        "cost_usd": None if not priced and unpriced else sum(priced),
        "unpriced_requests": unpriced,
    }


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error"}}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def mask(secret: str) -> str:
    """The sidecar's `keys.mask` (the TUI tests do not import `sidecar`)."""
    head = secret[:3] if len(secret) >= 12 else ""
    return f"{head}…({len(secret)} chars)"


def free_port() -> int:
    """A port nothing listens on (bound, then released), for "sidecar not running" tests."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _colour(monkeypatch: pytest.MonkeyPatch) -> None:
    # Textual honours NO_COLOR, which would make colour assertions (and future snapshots) lie.
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
async def sidecar() -> AsyncIterator[FakeSidecar]:
    fake = FakeSidecar()
    fake.records = [
        record("r2", "2025-01-01T10:00:02+00:00", cost_usd=None, model="mystery-1",
               requested_model="mystery-1"),
        record("r1", "2025-01-01T10:00:01+00:00"),
    ]  # fmt: skip
    await fake.start()
    yield fake
    await fake.stop()


Wait = Callable[[Callable[[], bool]], Awaitable[None]]


@pytest.fixture
def make_record() -> Callable[..., dict[str, Any]]:
    """`record(id, ts, **overrides)`; a fixture so test modules never import this conftest (that
    breaks under `--import-mode=importlib` and with other conftest.py files on sys.path)."""
    return record


@pytest.fixture
def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def wait_until() -> Wait:
    """Poll a condition with a bounded number of short sleeps; no timing assertions anywhere."""

    async def wait(cond: Callable[[], bool], tries: int = 300, step: float = 0.02) -> None:
        for _ in range(tries):
            if cond():
                return
            await asyncio.sleep(step)
        assert cond(), "condition not reached"

    return wait
