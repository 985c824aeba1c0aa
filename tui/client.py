"""HTTP client for the sidecar's control API (`/_sidecar/*`) and an incremental SSE parser.

No textual import. This is the TUI's only way to reach the proxy: it never imports `sidecar`, so it
can attach to a sidecar started elsewhere, and the proxy never waits on a slow UI.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp
import orjson

MAX_EVENT_BYTES = 16 * 1024 * 1024
"""A single SSE event larger than this is treated as a broken stream (reconnect), not buffered."""


class ControlError(Exception):
    """The control API answered, but not with what the contract promises."""


class SSEEvent(NamedTuple):
    event: str
    data: bytes


class SSEParser:
    """Incremental Server-Sent Events parser: feed arbitrary chunks, get complete events back.

    Reads the stream with `iter_any()` rather than aiohttp's line iterator, which raises
    `LineTooLong` past 512 KiB and a `request_finished` record can be large. Handles `\\n` and
    `\\r\\n` line endings, `:` comment lines (the 15 s keep-alive pings) and multi-line data.
    """

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[bytes] = []
        self._size = 0
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buf += chunk
        out: list[SSEEvent] = []
        start = 0
        while (nl := self._buf.find(b"\n", start)) != -1:
            line = self._buf[start:nl]
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if ev := self._line(line):
                out.append(ev)
        self._buf = self._buf[start:]
        if len(self._buf) + self._size > self._max:
            raise ControlError(f"SSE event larger than {self._max} bytes")
        return out

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            ev = SSEEvent(self._event or "message", b"\n".join(self._data))
            self._event, self._data, self._size = "", [], 0
            return ev
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"data":
            self._data.append(value)
            self._size += len(value)
        return None  # `id` and `retry` are not used by our stream


def normalize_url(url: str) -> str:
    """`127.0.0.1:8787/` -> `http://127.0.0.1:8787`; the control paths are appended to it."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


def describe_error(exc: BaseException) -> str:
    """A short reason for the status bar; aiohttp's own messages run to a hundred characters."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        return "connection refused" if refused else "cannot connect"
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "timed out"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, (ControlError, aiohttp.ClientResponseError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class ControlClient:
    """Typed calls for the control API endpoints the TUI uses, over one pooled session.

    Args:
        url: The sidecar's base URL, e.g. `http://127.0.0.1:8787`.
        connect_timeout: Seconds to wait for a TCP connect; the sidecar is local, so short.
        read_timeout: Total seconds for one JSON call.
        idle_timeout: Longest silence on the event stream before it counts as dead; the sidecar
            pings every 15 s, so three missed pings.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 15.0,
        idle_timeout: float = 45.0,
    ) -> None:
        self.url = normalize_url(url)
        self._json_timeout = aiohttp.ClientTimeout(total=read_timeout, sock_connect=connect_timeout)
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=idle_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession must be built inside the running event loop.
        if self._session is None or self._session.closed:
            headers = {"User-Agent": "llm-sidecar-tui"}
            token = os.environ.get("SIDECAR_TOKEN")  # a client token, when the sidecar requires one
            if token:
                headers["Authorization"] = f"Bearer {token}"
            self._session = aiohttp.ClientSession(headers=headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        async with self._http().get(
            self.url + path, params=params, timeout=self._json_timeout
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise ControlError(f"GET {path}: HTTP {resp.status}")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ControlError(f"GET {path}: invalid JSON") from exc

    async def send_json(self, method: str, path: str, body: Any = None) -> Any:
        """A write call. A refusal raises `ControlError` with the sidecar's own message (its error
        messages never contain the request body, so a key sent here is never echoed back)."""
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        async with self._http().request(
            method, self.url + path, data=data, headers=headers, timeout=self._json_timeout
        ) as resp:
            raw = await resp.read()
            status = resp.status
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        if status != 200:
            message = None
            if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                message = answer["error"].get("message")
            raise ControlError(f"{method} {path}: HTTP {status}" + (f": {message}" if message else ""))
        if answer is None:
            raise ControlError(f"{method} {path}: invalid JSON")
        return answer

    async def keys(self) -> list[dict[str, Any]]:
        """`/keys`: each provider with `has_key` (True/False/None = keyring unavailable) and a masked hint."""
        data = await self.get_json("/_sidecar/keys")
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ControlError("keys: expected {'keys': [...]}")
        return [k for k in data["keys"] if isinstance(k, dict)]

    async def set_key(self, provider: str, key: str) -> dict[str, Any]:
        """Store `key` in the sidecar's keyring; answers `{"provider", "hint"}`, never the key."""
        data = await self.send_json("PUT", "/_sidecar/keys/" + quote(provider, safe=""), {"key": key})
        if not isinstance(data, dict):
            raise ControlError("set key: expected an object")
        return data

    async def delete_key(self, provider: str) -> dict[str, Any]:
        data = await self.send_json("DELETE", "/_sidecar/keys/" + quote(provider, safe=""))
        if not isinstance(data, dict):
            raise ControlError("delete key: expected an object")
        return data

    async def set_paused(self, paused: bool) -> bool:
        """`POST /pause` or `/resume`; answers the sidecar's new state."""
        data = await self.send_json("POST", "/_sidecar/pause" if paused else "/_sidecar/resume")
        if not isinstance(data, dict) or not isinstance(data.get("paused"), bool):
            raise ControlError("pause: expected {'paused': bool}")
        return data["paused"]

    async def budgets(self) -> list[dict[str, Any]]:
        """`/budgets`: each configured cap (scope, period, limit_usd, spent_usd, resets); [] for none."""
        data = await self.get_json("/_sidecar/budgets")
        if not isinstance(data, dict) or not isinstance(data.get("budgets"), list):
            raise ControlError("budgets: expected {'budgets': [...]}")
        return [b for b in data["budgets"] if isinstance(b, dict)]

    async def health(self) -> dict[str, Any]:
        data = await self.get_json("/_sidecar/health")
        if not isinstance(data, dict):
            raise ControlError("health: expected an object")
        return data

    async def stats(self, since: str | None = None) -> dict[str, Any]:
        """`/stats`: totals, `by_provider`, `by_model` since `since` (ISO 8601), `providers_health`."""
        data = await self.get_json("/_sidecar/stats", {"since": since} if since else None)
        if not isinstance(data, dict):
            raise ControlError("stats: expected an object")
        return data

    async def recent(self, limit: int = 500) -> list[Any]:
        """The newest `limit` records, newest first."""
        data = await self.get_json("/_sidecar/requests", {"limit": str(limit)})
        if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
            raise ControlError("requests: expected {'requests': [...]}")
        return data["requests"]

    async def request(self, rid: str) -> dict[str, Any]:
        """One record with its (already redacted) bodies."""
        data = await self.get_json("/_sidecar/requests/" + quote(rid, safe=""))
        if not isinstance(data, dict):
            raise ControlError("request: expected an object")
        return data

    @asynccontextmanager
    async def events(self) -> AsyncIterator[AsyncIterator[SSEEvent]]:
        """Open `/_sidecar/events`; yields an iterator of parsed events.

        Opening (headers received) and iterating are separate steps so the feed can subscribe
        first and load history second: nothing that happens in between is missed."""
        async with self._http().get(
            self.url + "/_sidecar/events",
            timeout=self._stream_timeout,
            headers={"Accept": "text/event-stream"},
        ) as resp:
            if resp.status != 200:
                raise ControlError(f"GET /_sidecar/events: HTTP {resp.status}")
            yield self._iter_events(resp)

    @staticmethod
    async def _iter_events(resp: aiohttp.ClientResponse) -> AsyncIterator[SSEEvent]:
        parser = SSEParser()
        async for chunk in resp.content.iter_any():
            for ev in parser.feed(chunk):
                yield ev

    @property
    def has_token(self) -> bool:
        """Whether calls carry a client token (`SIDECAR_TOKEN`): the TUI only gets one when the sidecar wants it."""
        return bool(os.environ.get("SIDECAR_TOKEN"))

    async def post_raw(
        self, path: str, data: bytes, headers: dict[str, str], *, keep: int = 65536, idle_timeout: float = 600.0
    ) -> tuple[int, dict[str, str], bytes]:
        """POST `data` to any sidecar path (a replay goes to an inbound endpoint) with this client's token.

        Answers (status, headers, the first `keep` bytes). The whole answer is read, so the sidecar records a
        finished request rather than a client that hung up; a generation can be silent for minutes, and the
        sidecar's own timeouts end it, so the idle limit here is generous."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._json_timeout.sock_connect,
                                        sock_read=idle_timeout)
        async with self._http().post(self.url + path, data=data, headers=headers, timeout=timeout) as resp:
            head = bytearray()
            async for chunk in resp.content.iter_any():
                if len(head) < keep:
                    head += chunk[: keep - len(head)]
            return resp.status, dict(resp.headers), bytes(head)
