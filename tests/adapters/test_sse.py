"""SSE framing: events must not depend on how the network chunked the bytes."""

from __future__ import annotations

import random

import pytest

from adapters.sse import SSEEvent, SSEParser, format_event, has_value, payload_type

# An Anthropic-style stream (event lines, ping, comment, multi-line data) — exercises every field.
STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_01","usage":{"input_tokens":25,"output_tokens":1}}}\n'
    b"\n"
    b": keep-alive comment\n"
    b"event: ping\n"
    b'data: {"type": "ping"}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello \xc3\xa9"}}\n'
    b"\n"
    b"id: 7\n"
    b"retry: 1000\n"
    b"data: line one\n"
    b"data:line two\n"
    b"data:  two spaces\n"
    b"\n"
    b"event: orphan\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    SSEEvent(
        "message_start",
        b'{"type":"message_start","message":{"id":"msg_01","usage":{"input_tokens":25,"output_tokens":1}}}',
    ),
    SSEEvent("ping", b'{"type": "ping"}'),
    SSEEvent(
        "content_block_delta",
        b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello \xc3\xa9"}}',
    ),
    SSEEvent(None, b"line one\nline two\n two spaces"),
    SSEEvent(None, b"[DONE]"),
]


def parse_chunks(chunks: list[bytes]) -> list[SSEEvent]:
    p = SSEParser()
    out: list[SSEEvent] = []
    for c in chunks:
        out += p.feed(c)
    return out + p.flush()


def crlf(b: bytes) -> bytes:
    return b.replace(b"\n", b"\r\n")


def cr(b: bytes) -> bytes:
    return b.replace(b"\n", b"\r")


@pytest.mark.parametrize("conv", [lambda b: b, crlf, cr], ids=["lf", "crlf", "cr"])
def test_whole_stream(conv):
    assert parse_chunks([conv(STREAM)]) == EXPECTED


@pytest.mark.parametrize("conv", [lambda b: b, crlf, cr], ids=["lf", "crlf", "cr"])
def test_one_byte_at_a_time(conv):
    s = conv(STREAM)
    assert parse_chunks([s[i : i + 1] for i in range(len(s))]) == EXPECTED


@pytest.mark.parametrize("conv", [lambda b: b, crlf, cr], ids=["lf", "crlf", "cr"])
def test_split_at_every_position(conv):
    s = conv(STREAM)
    for i in range(len(s) + 1):
        assert parse_chunks([s[:i], s[i:]]) == EXPECTED, i


def test_random_chunkings():
    rng = random.Random(1234)
    for conv in (lambda b: b, crlf, cr):
        s = conv(STREAM)
        for _ in range(300):
            cuts = sorted(rng.sample(range(1, len(s)), rng.randint(1, 40)))
            chunks = [s[a:b] for a, b in zip([0, *cuts], [*cuts, len(s)])]
            assert parse_chunks(chunks) == EXPECTED


def test_mixed_line_endings():
    s = b"data: a\r\ndata: b\rdata: c\n\r\nevent: e\rdata: d\r\r"
    assert parse_chunks([s]) == [SSEEvent(None, b"a\nb\nc"), SSEEvent("e", b"d")]


def test_crlf_split_inside_is_one_line_ending_not_a_blank_line():
    # \r ends a chunk, \n opens the next: one line ending, so no early dispatch of "a".
    assert parse_chunks([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [SSEEvent(None, b"a\nb")]


def test_events_dispatch_as_soon_as_blank_line_arrives():
    p = SSEParser()
    assert p.feed(b"data: 1\n") == []
    assert p.feed(b"\ndata: 2") == [SSEEvent(None, b"1")]
    assert p.feed(b"\n\n") == [SSEEvent(None, b"2")]
    assert p.flush() == []


def test_comments_and_no_data_events_are_not_dispatched():
    s = b": OPENROUTER PROCESSING\n\n:\n\nevent: ping\n\nid: 3\n\n"
    assert parse_chunks([s]) == []


def test_event_name_resets_after_dispatch():
    s = b"event: a\ndata: 1\n\ndata: 2\n\n"
    assert parse_chunks([s]) == [SSEEvent("a", b"1"), SSEEvent(None, b"2")]


def test_empty_data_fields():
    # `data:` and a bare `data` each append an empty line; the event is still dispatched.
    assert parse_chunks([b"data:\n\n"]) == [SSEEvent(None, b"")]
    assert parse_chunks([b"data\ndata\n\n"]) == [SSEEvent(None, b"\n")]


def test_flush_gives_unterminated_final_event():
    # Gemini ends its body with no trailing blank line on some errors.
    p = SSEParser()
    assert p.feed(b'data: {"a":1}\r\n\r\ndata: {"error":') == [SSEEvent(None, b'{"a":1}')]
    assert p.feed(b'{"code":500}}') == []
    assert p.flush() == [SSEEvent(None, b'{"error":{"code":500}}')]
    assert p.flush() == []


def test_flush_after_complete_line_without_blank():
    p = SSEParser()
    assert p.feed(b"event: x\ndata: y\n") == []
    assert p.flush() == [SSEEvent("x", b"y")]


def test_bom_stripped_only_at_start():
    bom = b"\xef\xbb\xbf"
    assert parse_chunks([bom[:2], bom[2:] + b"data: x\n\n"]) == [SSEEvent(None, b"x")]
    # later in the stream a BOM is just part of a (now unknown) field name
    assert parse_chunks([b"data: a\n\n" + bom + b"data: b\n\n"]) == [SSEEvent(None, b"a")]


def test_long_line_in_many_chunks():
    payload = b'{"text":"' + b"x" * 100_000 + b'"}'
    s = b"data: " + payload + b"\n\n"
    assert parse_chunks([s[i : i + 1000] for i in range(0, len(s), 1000)]) == [SSEEvent(None, payload)]


def test_empty_chunks_are_harmless():
    assert parse_chunks([b"", b"data: a", b"", b"\r", b"", b"\n\n", b""]) == [SSEEvent(None, b"a")]
    # an empty chunk between \r and \n must not turn the \n into a blank line
    assert parse_chunks([b"data: a\r", b"", b"\ndata: b\r\n\r\n"]) == [SSEEvent(None, b"a\nb")]


@pytest.mark.parametrize(
    "data,event",
    [
        (b'{"a":1}', None),
        (b'{"type":"error","error":{"type":"api_error","message":"x"}}', "error"),
        (b"multi\nline\r\ndata", "message_delta"),
        (b"", None),
    ],
)
def test_format_event_round_trips(data, event):
    framed = format_event(data, event)
    assert framed.endswith(b"\n\n")
    want = data.replace(b"\r\n", b"\n")
    assert parse_chunks([framed]) == [SSEEvent(event, want)]


def test_format_event_exact_bytes():
    assert format_event(b"[DONE]") == b"data: [DONE]\n\n"
    assert format_event(b"{}", "ping") == b"event: ping\ndata: {}\n\n"


def test_has_value():
    assert not has_value(b'{"choices":[],"usage":null}', b'"usage"')
    assert not has_value(b'{"usage" :  null}', b'"usage"')
    assert has_value(b'{"usage":{"prompt_tokens":1}}', b'"usage"')
    assert has_value(b'{"usage":null,"x_groq":{"usage":{"a":1}}}', b'"usage"')
    # a string value "usage" is not a key
    assert not has_value(b'{"delta":{"content":"usage"}}', b'"usage"')
    # escaped quotes in text never look like a key
    assert not has_value(b'{"content":"say \\"usage\\": 5"}', b'"usage"')
    assert not has_value(b"", b'"usage"')


def test_payload_type():
    assert payload_type(b'{"type":"message_start","message":{}}') == "message_start"
    assert payload_type(b'{"type": "response.completed"}') == "response.completed"
    assert payload_type(b'{"id":"x","type":"message_stop"}') is None
    assert payload_type(b"[DONE]") is None
    assert payload_type(b'{"type":1}') is None
