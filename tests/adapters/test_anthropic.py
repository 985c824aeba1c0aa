"""Anthropic Messages adapter: usage (cache folded into input), stream meter, error shapes."""

from __future__ import annotations

import orjson
import pytest

from adapters import anthropic as an
from adapters.ir import Usage
from adapters.sse import SSEParser

START = (
    b'{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant",'
    b'"model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,'
    b'"usage":{"input_tokens":25,"cache_creation_input_tokens":1000,"cache_read_input_tokens":2000,'
    b'"cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}'
)
BODY = [
    (b"content_block_start", b'{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}'),
    (b"ping", b'{"type": "ping"}'),
    (b"content_block_delta", b'{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants \\"usage\\"..."}}'),
    (b"content_block_delta", b'{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}'),
    (b"content_block_stop", b'{"type":"content_block_stop","index":0}'),
    (b"content_block_start", b'{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}'),
    (b"content_block_delta", b'{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello! {\\"error\\": \\"none\\"}"}}'),
    (b"content_block_stop", b'{"type":"content_block_stop","index":1}'),
]
DELTA = b'{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":315,"output_tokens_details":{"thinking_tokens":280}}}'
STOP = b'{"type":"message_stop"}'


def sse(frames: list[tuple[bytes, bytes]], event_lines: bool = True) -> bytes:
    return b"".join((b"event: " + e + b"\n" if event_lines else b"") + b"data: " + d + b"\n\n" for e, d in frames)


FULL = [(b"message_start", START), *BODY, (b"message_delta", DELTA), (b"message_stop", STOP)]
WANT = Usage(input=3025, output=315, cache_read=2000, cache_write=1000, reasoning=280)


def meter(raw: bytes) -> an.StreamMeter:
    p = SSEParser()
    m = an.StreamMeter()
    for e in p.feed(raw) + p.flush():
        m.feed(e)
    return m


def test_format_name():
    assert an.FORMAT == "anthropic"


def test_usage_from_response_adds_cache_to_input():
    body = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-1",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "cache_creation_input_tokens": 248, "cache_read_input_tokens": 1024, "output_tokens": 6, "server_tool_use": None, "service_tier": "standard"},
    }
    u = an.usage_from_response(body)
    assert u == Usage(input=1284, output=6, cache_read=1024, cache_write=248)
    assert u.total == 1290


def test_usage_without_cache_fields_and_ttl_breakdown_only():
    assert an.usage_from_response({"usage": {"input_tokens": 10, "output_tokens": 3}}) == Usage(input=10, output=3)
    u = an.usage_from_response({"usage": {"input_tokens": 10, "output_tokens": 3, "cache_creation_input_tokens": None, "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 50}}})
    assert u == Usage(input=160, output=3, cache_write=150)
    assert an.usage_from_response({"type": "message", "content": []}) is None


def test_meter_full_stream():
    m = meter(sse(FULL))
    assert m.finished and m.error is None
    assert m.usage == WANT


def test_meter_delta_with_cumulative_input_is_not_double_counted():
    delta = b'{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":25,"cache_creation_input_tokens":1000,"cache_read_input_tokens":2000,"output_tokens":315,"output_tokens_details":{"thinking_tokens":280}}}'
    m = meter(sse([(b"message_start", START), *BODY, (b"message_delta", delta), (b"message_stop", STOP)]))
    assert m.usage == WANT


def test_meter_parses_only_start_and_delta(monkeypatch):
    calls = []
    real = an._loads
    monkeypatch.setattr(an, "_loads", lambda d: calls.append(d) or real(d))
    meter(sse(FULL))
    assert calls == [START, DELTA]


def test_meter_error_after_200():
    raw = sse([(b"message_start", START), *BODY[:3], (b"error", b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}')])
    m = meter(raw)
    assert m.error == "Overloaded" and not m.finished
    assert m.usage == Usage(input=3025, output=1, cache_read=2000, cache_write=1000)


def test_meter_cut_stream_is_not_finished():
    m = meter(sse(FULL[:-2]))
    assert not m.finished and m.error is None and m.usage.input == 3025


def test_meter_without_event_lines():
    m = meter(sse(FULL, event_lines=False))
    assert m.finished and m.usage == WANT


def test_meter_round_trips_own_stream_error():
    m = meter(an.stream_error_event(529, "Overloaded"))
    assert m.error == "Overloaded"


ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
    402: "billing_error",
    413: "request_too_large",
    504: "timeout_error",
    418: "invalid_request_error",
    502: "api_error",
}


@pytest.mark.parametrize("status", sorted(ANTHROPIC_TYPES))
def test_error_body(status):
    body = orjson.loads(an.error_body(status, "boom", code="ignored"))
    assert body == {"type": "error", "error": {"type": ANTHROPIC_TYPES[status], "message": "boom"}}
    assert an.error_message(an.error_body(status, "boom")) == "boom"


def test_error_types_are_known_to_the_sdk():
    mod = pytest.importorskip("anthropic.types.shared.error_type")
    import typing

    known = set(typing.get_args(mod.ErrorType)) | {"request_too_large"}  # 413 comes from Cloudflare
    for status in ANTHROPIC_TYPES:
        assert orjson.loads(an.error_body(status, "x"))["error"]["type"] in known


def test_stream_error_event_bytes():
    raw = an.stream_error_event(500, "Internal server error")
    assert raw == b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"Internal server error"}}\n\n'


@pytest.mark.parametrize(
    "body,want",
    [
        (b'{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"},"request_id":"req_1"}', "messages: roles must alternate"),
        (b'{"type":"error","error":{"type":"overloaded_error"}}', "overloaded_error"),
        (b'{"error":{"message":"Forbidden"}}', "Forbidden"),
        (b'{"message":"Too many requests"}', "Too many requests"),
        (b"error code: 502", None),
        (b"", None),
        (b"\x00\x01", None),
        (b"[1,2]", None),
    ],
)
def test_error_message(body, want):
    assert an.error_message(body) == want
