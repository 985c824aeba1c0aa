"""A frozen or vanished UI costs the proxy nothing.

A TUI whose process is stopped (Ctrl-Z, a debugger, a hung terminal) keeps its event-stream socket open but
reads nothing: the kernel buffers fill and the sidecar's writes to it stop completing. This test plays that
UI with a raw socket that sends the subscription and then never reads, drives traffic through the proxy,
and checks every request is answered, the frozen subscriber's backlog stays bounded (oldest events dropped
and counted), and a UI that (re)connects afterwards finds every request in the history.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import aiohttp
import orjson

from conftest import Sidecar
from http_helpers import call
from sidecar.state import STATE

REQUESTS = 900  # each publishes started/attempt/finished: about 2,700 events, past the 2,048-event queue
IN_FLIGHT = 8


async def _frozen_subscriber(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills fast
    sock.connect((parts.hostname, parts.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"GET /_sidecar/events HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    return reader, writer  # from here on nobody reads `reader`


async def _traffic(sidecar: Sidecar, count: int) -> list[int]:
    bodies = [
        ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "stream": True,
                                  "messages": [{"role": "user", "content": "stream"}]}),
        ("/v1/messages", {"model": "anthropic/claude-haiku-4-5", "max_tokens": 20,
                          "messages": [{"role": "user", "content": "hi"}]}),
    ]
    statuses: list[int] = []
    gate = asyncio.Semaphore(IN_FLIGHT)
    headers = {"Authorization": "Bearer placeholder", "x-api-key": "placeholder", "anthropic-version": "2023-06-01"}

    async def one(i: int, http: aiohttp.ClientSession) -> None:
        path, body = bodies[i % len(bodies)]
        async with gate:
            statuses.append((await call(http, "POST", sidecar.url + path, body=body, headers=headers)).status)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one(i, http) for i in range(count)))
    return statuses


async def test_a_frozen_ui_does_not_stall_the_proxy_and_loses_nothing_from_history(sidecar: Sidecar) -> None:
    bus = sidecar.app[STATE].bus
    _, writer = await _frozen_subscriber(sidecar.url)
    for _ in range(100):
        if bus.subscriber_count:
            break
        await asyncio.sleep(0.01)
    (frozen,) = bus._subs

    async with asyncio.timeout(120):  # a hang guard, not a speed check
        statuses = await _traffic(sidecar, REQUESTS)
    assert statuses.count(200) == REQUESTS

    # The frozen reader cost a bounded queue, and it lost the oldest events rather than holding the proxy.
    assert frozen.queue.qsize() <= frozen.queue.maxsize
    assert frozen.dropped > 0
    assert bus.subscriber_count == 1

    # The UI goes away entirely: the server notices and lets go of the subscription; traffic goes on.
    writer.transport.abort()
    async with asyncio.timeout(30):
        while bus.subscriber_count:
            await asyncio.sleep(0.02)
        assert (await _traffic(sidecar, 30)).count(200) == 30

    # A UI that reconnects catches up from the store: every request is there.
    await sidecar.store.flush()
    async with aiohttp.ClientSession() as http:
        seen: set[str] = set()
        before = None
        while True:
            params = {"limit": "500", **({"before": before} if before else {})}
            async with http.get(sidecar.url + "/_sidecar/requests", params=params) as resp:
                page = orjson.loads(await resp.read())
            seen.update(r["id"] for r in page["requests"])
            before = page["next_before"]
            if not before:
                break
    assert len(seen) == REQUESTS + 30
