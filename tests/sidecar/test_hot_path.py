"""The shortcuts taken on the per-request and per-chunk paths (issue 8) must not change what clients get.

Each fast path is checked against the slow one it replaces: the scrubber's one-byte test against scrubbing the
whole body, the usage-chunk stripping that forwards whole chunks untouched against re-framing every event, and the
loop and log hand-off against what they stand in for.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sse import SSEParser
from conftest import KEYS, Upstreams, config_for, start_sidecar
from sidecar import cli, formats, logsink, loop
from sidecar.keys import MemoryKeyStore
from sidecar.redact import REDACTED, StreamScrubber, scrub
from sidecar.transforms import PassThroughStream

KEY = b"sk-live-abcabd"  # repeated letters: partial matches and overlapping prefixes


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"sk-", b"live-", b"abc", b"abd", b"a", b"\n", b"data: x", KEY]), max_size=12),
       st.lists(st.integers(min_value=0, max_value=120), max_size=8))
def test_stream_scrubber_equals_scrubbing_the_whole(parts: list[bytes], cuts: list[int]) -> None:
    text = b"".join(parts)
    scrubber = StreamScrubber(KEY)
    out = b"".join(scrubber.feed(p) for p in _pieces(text, cuts)) + scrubber.flush()
    assert out == scrub(text, KEY)
    assert KEY not in out


def test_stream_scrubber_holds_back_only_a_possible_key_start() -> None:
    scrubber = StreamScrubber(KEY)
    line = b'data: {"x":1}\n\n'
    assert scrubber.feed(line) is line  # ends in a byte no key prefix ends with: passed on as it came
    assert scrubber.feed(b"token sk-li") == b"token "  # could be the start of the key: held
    assert scrubber.feed(b"ve-abcabd!\n") == REDACTED + b"!\n"


def _openai_stream(n: int) -> bytes:
    head = b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":'
    body = b"".join(head + b'[{"index":0,"delta":{"content":"t"},"finish_reason":null}],"usage":null}\n\n'
                    for _ in range(n))
    return (body + head + b'[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
            + head + b'[],"usage":{"prompt_tokens":3,"completion_tokens":%d,"total_tokens":%d}}\n\n' % (n, n + 3)
            + b"data: [DONE]\n\n")


def _events(data: bytes) -> list[tuple[str | None, bytes]]:
    parser = SSEParser()
    return [(e.event, e.data) for e in [*parser.feed(data), *parser.flush()]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=900), max_size=10))
def test_usage_chunk_stripping_is_the_same_however_the_stream_is_cut(cuts: list[int]) -> None:
    whole = _openai_stream(4)
    stream = PassThroughStream(formats.module("openai_chat"), sse=True, strip_usage=True)
    out = b"".join(stream.feed(p) for p in _pieces(whole, cuts)) + stream.finish("cut")
    expected = [e for e in _events(whole) if b'"choices":[]' not in e[1]]
    assert _events(out) == expected
    assert stream.usage is not None and (stream.usage.input, stream.usage.output) == (3, 4)
    assert stream.complete


def _anthropic_stream(n: int) -> bytes:
    def event(name: bytes, data: bytes) -> bytes:
        return b"event: " + name + b"\ndata: " + data + b"\n\n"
    delta = event(b"content_block_delta", b'{"type":"content_block_delta","index":0,'
                  b'"delta":{"type":"text_delta","text":"an error message_ is just text"}}')
    return (event(b"message_start", b'{"type":"message_start","message":{"usage":{"input_tokens":7,'
                  b'"output_tokens":1}}}')
            + event(b"content_block_start", b'{"type":"content_block_start","index":0,'
                    b'"content_block":{"type":"text","text":""}}')
            + event(b"ping", b'{"type":"ping"}') + delta * n
            + event(b"content_block_stop", b'{"type":"content_block_stop","index":0}')
            + event(b"message_delta", b'{"type":"message_delta","delta":{"stop_reason":"end_turn"},'
                    b'"usage":{"output_tokens":%d}}' % n)
            + event(b"message_stop", b'{"type":"message_stop"}'))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["openai_chat", "anthropic"]), st.lists(st.integers(min_value=0, max_value=1500), max_size=10))
def test_pass_through_is_byte_for_byte_and_metered_however_it_is_cut(fmt: str, cuts: list[int]) -> None:
    whole = _openai_stream(5) if fmt == "openai_chat" else _anthropic_stream(5)
    stream = PassThroughStream(formats.module(fmt), sse=True, strip_usage=False)
    out = b"".join(stream.feed(p) for p in _pieces(whole, cuts)) + stream.finish("cut")
    assert out == whole
    assert stream.usage is not None and stream.usage.output == 5 and stream.complete
    assert stream.usage.input == (3 if fmt == "openai_chat" else 7)


@pytest.mark.parametrize("fmt, marker", [("openai_chat", b'"usage":{'), ("openai_chat", b"[DONE]"),
                                          ("anthropic", b"message_delta"), ("anthropic", b"message_stop")])
def test_a_marker_cut_in_two_is_still_seen(fmt: str, marker: bytes) -> None:
    whole = _openai_stream(3) if fmt == "openai_chat" else _anthropic_stream(3)
    at = whole.rindex(marker) + 3  # neither piece holds the whole marker
    stream = PassThroughStream(formats.module(fmt), sse=True, strip_usage=False)
    out = stream.feed(whole[:at]) + stream.feed(whole[at:]) + stream.finish("cut")
    assert out == whole
    assert stream.usage is not None and stream.usage.output == 3 and stream.complete


def test_chunks_the_meter_needs_are_still_read() -> None:
    stream = PassThroughStream(formats.module("anthropic"), sse=True, strip_usage=False)
    err = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
    assert stream.feed(err) is err
    stream.finish("cut")
    assert stream.upstream_error == "busy"


def test_whole_chunks_without_a_usage_chunk_are_forwarded_untouched() -> None:
    stream = PassThroughStream(formats.module("openai_chat"), sse=True, strip_usage=True)
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n: keep-alive\n\n'
    assert stream.feed(chunk) is chunk  # comments and framing kept byte for byte
    split = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: {"choi'
    assert stream.feed(split) == b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    usage = b'ces":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}\n\n'
    assert stream.feed(usage) == b""  # the usage-only chunk the sidecar asked for is cut out


def test_sse_parser_knows_when_it_is_between_events() -> None:
    parser = SSEParser()
    assert parser.between_events
    parser.feed(b"event: x\n")
    assert not parser.between_events  # a named event without its data yet
    parser.feed(b"data: 1\n")
    assert not parser.between_events
    parser.feed(b"\n")
    assert parser.between_events
    parser.feed(b"data: 2\r")
    assert not parser.between_events


def test_the_loop_is_uvloop_unless_opted_out(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def which() -> type:
        return type(asyncio.get_running_loop())

    monkeypatch.delenv(loop.OPT_OUT, raising=False)
    assert loop.loop_name() == "uvloop"
    assert loop.run(which()) is uvloop.Loop
    monkeypatch.setenv(loop.OPT_OUT, "1")
    assert loop.loop_factory() is None and loop.loop_name() == "asyncio"
    assert not issubclass(loop.run(which()), uvloop.Loop)
    plain = asyncio.new_event_loop()
    try:
        assert type(plain).__module__.startswith("asyncio")  # nothing global was changed
    finally:
        plain.close()


def test_log_hand_off_keeps_order_arguments_and_tracebacks() -> None:
    """Lines reach the writer thread's stream in order, with the arguments they had when logged; request lines
    (the fast path that skips the logging machinery) interleave in order and honour the logger's level."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.logThreads, logging.logProcesses, logging.logMultiprocessing,
             logging._srcfile)
    out = io.StringIO()
    try:
        root.setLevel(logging.INFO)
        logsink.install(logging.StreamHandler(out))
        log = logging.getLogger("sidecar.test")
        state = {"n": 1}
        for i in range(50):
            log.info("line %d %s", i, state)
            logsink.request_line("req %s cost=%s", (f"r{i}", None))
        state["n"] = 2  # changed after the call: the line must show what it was when logged
        root.setLevel(logging.WARNING)
        logsink.request_line("req %s", ("hidden",))  # below the level now: not written
        root.setLevel(logging.INFO)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        logsink.uninstall()  # writes what is queued, then stops the thread
    finally:
        logsink.uninstall()
        root.handlers[:], root.level = saved[0], saved[1]
        logging.logThreads, logging.logProcesses, logging.logMultiprocessing, logging._srcfile = saved[2:]
    lines = out.getvalue().splitlines()
    expected = []
    for i in range(50):
        expected += [f"sidecar.test: line {i} {{'n': 1}}", f"sidecar.proxy: req r{i} cost=None"]
    assert [ln.split(" INFO ")[1] for ln in lines[:100]] == expected
    assert "ERROR sidecar.test: failed" in lines[100] and "ValueError: boom" in out.getvalue()
    assert "hidden" not in out.getvalue()


async def test_a_stream_whose_first_chunk_says_nothing_still_gets_its_headers_at_once(
    upstreams: Upstreams, tmp_path
) -> None:
    """The relay holds a stream's headers back to send them with the first chunk; when that chunk produces nothing
    for the client (an Anthropic ping, translated for an OpenAI client), the headers must still go out then."""
    client_has_headers = asyncio.Event()
    waited_out = []

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'event: ping\ndata: {"type":"ping"}\n\n')
        try:
            await asyncio.wait_for(client_has_headers.wait(), 10)
        except TimeoutError:
            waited_out.append(True)
        await resp.write(_anthropic_stream(2))
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    config = config_for(upstreams, tmp_path / "data", {"providers": {"pingy": {
        "adapter": "anthropic", "base_url": f"http://127.0.0.1:{runner.addresses[0][1]}"}}})
    sc, sc_runner = await start_sidecar(config, MemoryKeyStore({**KEYS, "pingy": "sk-pingy"}))
    try:
        async with aiohttp.ClientSession() as session:
            body = {"model": "pingy/claude-x", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            async with session.post(sc.url + "/v1/chat/completions", json=body) as resp:
                client_has_headers.set()
                text = await resp.read()
    finally:
        await sc_runner.cleanup()
        await runner.cleanup()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    assert not waited_out, "the client saw no headers until the upstream sent content"
    assert text.count(b"an error message_ is just text") == 2 and text.endswith(b"data: [DONE]\n\n")
