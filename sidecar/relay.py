"""Relaying a successful upstream answer to the client, reading usage on the way.

Non-streamed answers are read whole (under the first-byte deadline), transformed (or not) and sent.
Streams are relayed chunk by chunk as they arrive; the client's response starts only once the first chunk
is in hand, so an upstream that fails before sending anything can still be failed over. After that, an
upstream failure or silence longer than the idle timeout ends the stream with a well-formed error event
in the client's format.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from adapters.ir import Usage
from sidecar.exchange import Exchange, Failure
from sidecar.redact import StreamScrubber
from sidecar.transforms import StreamTransform
from sidecar.upstream import response_headers

if TYPE_CHECKING:
    from sidecar.proxy import Proxy

_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class _StreamResponse(web.StreamResponse):
    """Holds its headers back until the first body write, so they leave together with the first chunk: one send
    and one wake-up of the client instead of two, on the way to its first token. (aiohttp's own `web.Response`
    does the same; a stream opts in with this class attribute. Should aiohttp drop it, headers go out at once,
    as before.)"""

    _send_headers_immediately = False


BodyTransform = Callable[[bytes], tuple[bytes, Usage | None]]


async def relay_body(
    proxy: Proxy, request: web.Request, ex: Exchange, resp: aiohttp.ClientResponse, deadline: float,
    transform: BodyTransform, *, content_type: str | None = None,
) -> web.StreamResponse | Failure:
    if resp.content_type == "text/html":
        # A captive portal's or a misconfigured proxy's page, not an API answer: fail over, or a 502 in the
        # caller's format (an SDK cannot parse HTML).
        return Failure(502, f"{ex.record.provider} answered with an HTML page instead of an API response")
    try:
        async with asyncio.timeout_at(deadline):
            data = await resp.read()
    except TimeoutError:
        return Failure(504, f"{ex.record.provider} did not finish its answer within "
                            f"{proxy.config.timeouts.first_byte:g}s")
    except (aiohttp.ClientError, OSError) as exc:
        return Failure(502, f"{ex.record.provider} broke off its answer: {type(exc).__name__}")
    try:
        data, ex.usage = transform(proxy.scrub(ex, data))
    except ValueError as exc:
        return Failure(502, f"{ex.record.provider} sent an answer the sidecar could not read: {exc}")
    ex.response_body = data
    ex.record.status = resp.status
    headers = _headers(proxy, ex, resp, content_type)
    response = web.Response(status=resp.status, body=data, headers=headers)
    # Send before returning so that recording (in the caller's `finally`) happens after the client has its answer.
    await response.prepare(request)
    await response.write_eof()
    ex.prepared = response
    return response


async def relay_stream(
    proxy: Proxy, request: web.Request, ex: Exchange, resp: aiohttp.ClientResponse, deadline: float,
    transform: StreamTransform, *, content_type: str | None = None,
) -> web.StreamResponse | Failure:
    rec = ex.record
    content = resp.content
    try:
        async with asyncio.timeout_at(deadline):
            chunk = await content.readany()
    except TimeoutError:
        return Failure(504, f"{rec.provider} sent no stream data within {proxy.config.timeouts.first_byte:g}s")
    except (aiohttp.ClientError, OSError) as exc:
        return Failure(502, f"{rec.provider} broke off the stream before any data: {type(exc).__name__}")
    if not chunk:
        return Failure(502, f"{rec.provider} ended the stream without sending anything")

    response = _StreamResponse(status=resp.status, headers=_headers(proxy, ex, resp, content_type))
    await response.prepare(request)
    headers_held = True
    ex.prepared = response
    rec.status = resp.status
    cap = proxy.config.body_cap_bytes if proxy.config.store_bodies else 0
    captured = bytearray()
    idle = proxy.config.timeouts.idle
    loop = asyncio.get_running_loop()
    scrubber = StreamScrubber(ex.secret)
    error: str | None = None
    last = b""  # the upstream's final bytes, held back to leave in one write with the closing ones
    try:
        # Rescheduling a timer costs ~10 µs, too much for every chunk: the deadline is moved at most every
        # idle/4 and set to 1.25 × idle past that moment, so a stream silent for less than `idle` is never cut,
        # and one silent for longer is cut within 1.25 × idle.
        slack = idle / 4
        moved = loop.time()
        async with asyncio.timeout(idle + slack) as watchdog:
            while chunk:
                out = transform.feed(scrubber.feed(chunk))
                if out:
                    if len(captured) < cap:
                        captured += out[: cap - len(captured)]
                    if rec.ttft_ms is None:
                        rec.ttft_ms = ex.elapsed_ms()
                    if content.at_eof():  # the upstream has finished: one write below instead of two or three
                        last = out
                        break
                    await response.write(out)
                    headers_held = False
                elif headers_held:  # nothing for the client in the first chunk: it gets the headers now anyway
                    await response.write(b"")
                    headers_held = False
                now = loop.time()
                if now - moved > slack:
                    watchdog.reschedule(now + idle + slack)
                    moved = now
                chunk = await content.readany()
    except TimeoutError:
        error = f"{rec.provider} went silent for more than {idle:g}s mid-stream"
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        if request.transport is None or request.transport.is_closing():
            return _client_gone(ex, transform, captured)
        error = f"{rec.provider} broke off the stream: {type(exc).__name__}"
    except ConnectionResetError:
        return _client_gone(ex, transform, captured)  # the upstream is released by the caller
    held = scrubber.flush()
    if held:
        last += transform.feed(held)
    if error is not None:
        tail = transform.fail(error)
    else:
        incomplete = f"{rec.provider} ended the stream without its closing event"
        tail = transform.finish(incomplete)
        if transform.upstream_error:
            error = f"{rec.provider} stream error: {transform.upstream_error}"
        elif not transform.complete:
            error = incomplete
    ex.usage = transform.usage
    if len(captured) < cap:
        captured += tail[: cap - len(captured)]
    ex.response_body = bytes(captured) if captured else None
    if error is not None:
        rec.error = error
    try:
        await response.write_eof(last + tail)
    except ConnectionResetError:
        rec.error = rec.error or "client disconnected"
    return response


def _client_gone(ex: Exchange, transform: StreamTransform, captured: bytearray) -> web.StreamResponse:
    ex.record.error = "client disconnected"
    ex.usage = transform.usage
    ex.response_body = bytes(captured) if captured else None
    assert ex.prepared is not None
    return ex.prepared


def _headers(proxy: Proxy, ex: Exchange, resp: aiohttp.ClientResponse, content_type: str | None) -> dict[str, str]:
    headers = response_headers(resp.headers)
    content_type = content_type or resp.headers.get("Content-Type")
    if content_type:
        headers["Content-Type"] = content_type
    if ex.record.stream:
        headers.update(_STREAM_HEADERS)
    headers.update(proxy.sidecar_headers(ex))
    return headers
