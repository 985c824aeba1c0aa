"""Relaying a successful upstream answer to the client, reading usage on the way.

Non-streamed answers are read whole (under the first-byte deadline) and sent on unchanged. Streams are
relayed chunk by chunk as they arrive; the client's response starts only once the first chunk is in
hand, so an upstream that fails before sending anything can still be failed over. After that, an
upstream failure or silence longer than the idle timeout ends the stream with a well-formed error event
in the client's format.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import aiohttp
import orjson
from aiohttp import web

from adapters import gemini, openai_chat
from adapters.sse import SSEParser, format_event
from sidecar import formats
from sidecar.upstream import response_headers

from sidecar.exchange import Exchange, Failure

if TYPE_CHECKING:
    from sidecar.proxy import Proxy

_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def relay_body(
    proxy: Proxy, request: web.Request, ex: Exchange, resp: aiohttp.ClientResponse, deadline: float,
    *, strip_usage: bool = False,
) -> web.StreamResponse | Failure:
    try:
        async with asyncio.timeout_at(deadline):
            data = await resp.read()
    except TimeoutError:
        return Failure(504, f"{ex.record.provider} did not finish its answer within "
                            f"{proxy.config.timeouts.first_byte:g}s")
    except (aiohttp.ClientError, OSError) as exc:
        return Failure(502, f"{ex.record.provider} broke off its answer: {type(exc).__name__}")
    data = proxy.scrub(ex, data)
    try:
        ex.usage = formats.module(ex.fmt).usage_from_response(orjson.loads(data))
    except (orjson.JSONDecodeError, TypeError, AttributeError):
        ex.usage = None  # not JSON or no usage: relayed all the same, recorded without tokens
    ex.response_body = data
    ex.record.status = resp.status
    headers = _headers(proxy, ex, resp)
    response = web.Response(status=resp.status, body=data, headers=headers)
    # Send before returning so that recording (in the caller's `finally`) happens after the client has its answer.
    await response.prepare(request)
    await response.write_eof()
    ex.prepared = response
    return response


async def relay_stream(
    proxy: Proxy, request: web.Request, ex: Exchange, resp: aiohttp.ClientResponse, deadline: float,
    *, strip_usage: bool = False,
) -> web.StreamResponse | Failure:
    rec = ex.record
    fmt_module = formats.module(ex.fmt)
    sse = not (ex.fmt == "gemini" and request.query.get("alt") != "sse")
    parser = SSEParser()
    meter = fmt_module.StreamMeter()
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

    response = web.StreamResponse(status=resp.status, headers=_headers(proxy, ex, resp))
    await response.prepare(request)
    ex.prepared = response
    rec.status = resp.status
    cap = proxy.config.body_cap_bytes if proxy.config.store_bodies else 0
    captured = bytearray()
    array_body = bytearray()  # a non-SSE Gemini stream is one JSON array: usage is in its last element
    array_cap = 16 * 1024 * 1024
    idle = proxy.config.timeouts.idle
    loop = asyncio.get_running_loop()
    error: str | None = None
    try:
        async with asyncio.timeout(idle) as watchdog:
            while chunk:
                chunk = proxy.scrub(ex, chunk)
                if sse:
                    events = parser.feed(chunk)
                    for event in events:
                        meter.feed(event)
                    if strip_usage:
                        chunk = b"".join(
                            format_event(e.data, e.event) for e in events if not openai_chat.is_usage_only_chunk(e.data)
                        )
                elif len(array_body) < array_cap:
                    array_body += chunk
                if len(captured) < cap:
                    captured += chunk[: cap - len(captured)]
                if chunk:
                    if rec.ttft_ms is None:
                        rec.ttft_ms = ex.elapsed_ms()
                    await response.write(chunk)
                watchdog.reschedule(loop.time() + idle)
                chunk = await content.readany()
    except TimeoutError:
        error = f"{rec.provider} went silent for more than {idle:g}s mid-stream"
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        if request.transport is None or request.transport.is_closing():
            rec.error = "client disconnected"
            return response
        error = f"{rec.provider} broke off the stream: {type(exc).__name__}"
    except ConnectionResetError:
        rec.error = "client disconnected"  # writing to a client that went away; the upstream is released by the caller
        return response
    if sse:
        for event in parser.flush():
            meter.feed(event)
    elif ex.fmt == "gemini":
        meter_usage = gemini.usage_from_json_array_stream(bytes(array_body))
        if meter_usage is not None:
            ex.usage = meter_usage
    if meter.usage is not None:
        ex.usage = meter.usage
    if error is None and meter.error:
        error = f"{rec.provider} stream error: {meter.error}"
    elif error is None and sse and not meter.finished:
        error = f"{rec.provider} ended the stream without its closing event"
    ex.response_body = bytes(captured) if captured else None
    if error is not None:
        rec.error = error
        if not meter.error:  # the upstream already told the client about its own error
            try:
                await response.write(_stream_error(ex.fmt, error))
            except ConnectionResetError:
                return response
    try:
        await response.write_eof()
    except ConnectionResetError:
        rec.error = rec.error or "client disconnected"
    return response


def _stream_error(fmt: str, message: str) -> bytes:
    return formats.module(fmt).stream_error_event(502, message)


def _headers(proxy: Proxy, ex: Exchange, resp: aiohttp.ClientResponse) -> dict[str, str]:
    headers = response_headers(resp.headers)
    content_type = resp.headers.get("Content-Type")
    if content_type:
        headers["Content-Type"] = content_type
    if ex.record.stream:
        headers.update(_STREAM_HEADERS)
    headers.update(proxy.sidecar_headers(ex))
    return headers
