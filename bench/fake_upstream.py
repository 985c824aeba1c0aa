"""A fast fake LLM provider for benchmarks: a bare asyncio Protocol speaking just enough HTTP/1.1.

It answers, on one port:

- ``POST .../chat/completions`` (OpenAI Chat Completions): a JSON answer with ``usage``, or with
  ``"stream": true`` an SSE stream of N content chunks ``delay_ms`` apart, a usage chunk and ``[DONE]``;
- ``POST .../v1/messages`` (Anthropic Messages): a JSON answer, or the full Anthropic event sequence
  (message_start, content_block_start, N text deltas ``delay_ms`` apart, content_block_stop, message_delta
  with usage, message_stop);
- ``GET /health``; ``POST /_fake/config`` with ``{"chunks": N, "delay_ms": D}`` sets the stream shape
  for every later request (the benchmark runs scenarios one after another, direct and proxied alike).

Keep-alive, pipelining, Content-Length and chunked request bodies; non-streamed answers go out with
Content-Length in one write, streamed ones with chunked transfer encoding. The first stream chunk is sent
at once, so a stream lasts ``(chunks - 1) * delay_ms``. Chunk timers are plain ``call_later`` callbacks
(no task per stream), so the fake costs a few microseconds per chunk and is not the bottleneck.

    python bench/fake_upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import orjson

_TEXT = b"tok "
_SETTINGS = {"chunks": 10, "delay_ms": 0.0}


def _frame(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _head(status: bytes, content_type: bytes, length: int | None) -> bytes:
    if length is None:
        return (b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
                + b"\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n")
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
            + b"\r\nContent-Length: " + str(length).encode() + b"\r\n\r\n")


def _json_response(obj: object, status: bytes = b"200 OK") -> bytes:
    body = orjson.dumps(obj)
    return _head(status, b"application/json", len(body)) + body


# --- OpenAI Chat Completions -------------------------------------------------------------------

def openai_body(model: str, chunks: int) -> dict:
    return {
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok " * chunks},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks},
    }


def openai_stream(model: str, chunks: int) -> list[bytes]:
    """The SSE events of one stream, one list item per write: the last item carries the closing events."""
    m = orjson.dumps(model)
    pre = b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":' + m
    first = pre + b',"choices":[{"index":0,"delta":{"role":"assistant","content":"tok "},"finish_reason":null}]}\n\n'
    mid = pre + b',"choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}\n\n'
    stop = pre + b',"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    usage = (pre + b',"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":%d,"total_tokens":%d}}\n\n'
             % (chunks, 12 + chunks))
    writes = [first] + [mid] * (chunks - 1)
    writes[-1] = writes[-1] + stop + usage + b"data: [DONE]\n\n"
    return writes


# --- Anthropic Messages ------------------------------------------------------------------------

def anthropic_body(model: str, chunks: int) -> dict:
    return {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "tok " * chunks}], "stop_reason": "end_turn",
        "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": chunks},
    }


def _event(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


def anthropic_stream(model: str, chunks: int) -> list[bytes]:
    start = _event(b"message_start", b'{"type":"message_start","message":{"id":"msg_bench","type":"message",'
                   b'"role":"assistant","model":' + orjson.dumps(model) + b',"content":[],"stop_reason":null,'
                   b'"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}')
    block = _event(b"content_block_start",
                   b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}')
    delta = _event(b"content_block_delta",
                   b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"tok "}}')
    end = (_event(b"content_block_stop", b'{"type":"content_block_stop","index":0}')
           + _event(b"message_delta", b'{"type":"message_delta","delta":{"stop_reason":"end_turn",'
                    b'"stop_sequence":null},"usage":{"output_tokens":%d}}' % chunks)
           + _event(b"message_stop", b'{"type":"message_stop"}'))
    writes = [start + block + delta] + [delta] * (chunks - 1)
    writes[-1] = writes[-1] + end
    return writes


# --- the server ----------------------------------------------------------------------------------

class FakeProvider(asyncio.Protocol):
    __slots__ = ("transport", "buf", "busy", "closed")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False  # a stream is being written; later pipelined requests wait
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._process()

    def _process(self) -> None:
        buf = self.buf
        while not self.busy and not self.closed:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).split(b"\r\n")
            try:
                method, target, _ = head[0].split(b" ", 2)
            except ValueError:
                self._fail()
                return
            length = 0
            chunked = False
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            start = end + 4
            if chunked:
                body, consumed = _dechunk(buf, start)
                if body is None:
                    return
            else:
                if len(buf) < start + length:
                    return
                body, consumed = bytes(buf[start:start + length]), start + length
            del buf[:consumed]
            self._handle(method, target, body)

    def _fail(self) -> None:
        if self.transport is not None:
            self.transport.write(_json_response({"error": "bad request"}, b"400 Bad Request"))
            self.transport.close()
        self.closed = True

    def _handle(self, method: bytes, target: bytes, body: bytes) -> None:
        path = target.split(b"?", 1)[0]
        t = self.transport
        assert t is not None
        if method == b"GET" and path == b"/health":
            t.write(_json_response({"ok": True}))
            return
        if method == b"POST" and path == b"/_fake/config":
            _SETTINGS.update(orjson.loads(body))
            t.write(_json_response(_SETTINGS))
            return
        is_openai = path.endswith(b"/chat/completions")
        if method != b"POST" or not (is_openai or path.endswith(b"/v1/messages")):
            t.write(_json_response({"error": {"message": "not found"}}, b"404 Not Found"))
            return
        try:
            req = orjson.loads(body)
            model = str(req.get("model") or "unknown")
        except (orjson.JSONDecodeError, AttributeError):
            t.write(_json_response({"error": {"message": "bad json"}}, b"400 Bad Request"))
            return
        chunks = max(1, int(_SETTINGS["chunks"]))
        if req.get("stream") is not True:
            t.write(_json_response(openai_body(model, chunks) if is_openai else anthropic_body(model, chunks)))
            return
        writes = openai_stream(model, chunks) if is_openai else anthropic_stream(model, chunks)
        t.write(_head(b"200 OK", b"text/event-stream", None) + _frame(writes[0]))
        if len(writes) == 1:
            t.write(b"0\r\n\r\n")
            return
        self.busy = True
        _Stream(self, writes, float(_SETTINGS["delay_ms"]) / 1000.0).schedule()


class _Stream:
    """Writes the rest of one stream from timer callbacks."""

    __slots__ = ("proto", "writes", "i", "delay", "loop")

    def __init__(self, proto: FakeProvider, writes: list[bytes], delay: float) -> None:
        self.proto, self.writes, self.i, self.delay = proto, writes, 1, delay
        self.loop = asyncio.get_running_loop()

    def schedule(self) -> None:
        if self.delay > 0:
            self.loop.call_later(self.delay, self.step)
        else:
            self.loop.call_soon(self.step)

    def step(self) -> None:
        p = self.proto
        if p.closed or p.transport is None:
            return
        data = self.writes[self.i]
        self.i += 1
        if self.i >= len(self.writes):
            p.transport.write(_frame(data) + b"0\r\n\r\n")
            p.busy = False
            p._process()
        else:
            p.transport.write(_frame(data))
            self.schedule()


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes | None, int]:
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None, 0
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n", pos)  # no trailers expected
            if end < 0:
                return None, 0
            return bytes(out), end + 2
        if len(buf) < pos + size + 2:
            return None, 0
        out += buf[pos:pos + size]
        pos += size + 2


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FakeProvider, host, port, reuse_address=True, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake upstream on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--chunks", type=int, default=10, help="content chunks per stream (default 10)")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="time between stream chunks (default 0)")
    args = ap.parse_args(argv)
    _SETTINGS.update(chunks=args.chunks, delay_ms=args.delay_ms)
    try:
        import uvloop  # type: ignore[import-not-found]
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
