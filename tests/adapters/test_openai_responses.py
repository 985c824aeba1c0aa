"""OpenAI Responses adapter: usage, stream meter, error shapes."""

from __future__ import annotations

import orjson
import pytest

from adapters import openai_responses as rs
from adapters.ir import Usage
from adapters.sse import SSEEvent, SSEParser, format_event

USAGE = {
    "input_tokens": 2006,
    "input_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 0},
    "output_tokens": 300,
    "output_tokens_details": {"reasoning_tokens": 256},
    "total_tokens": 2306,
}


def response(status: str, usage: dict | None, error: dict | None = None) -> dict:
    return {
        "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "model": "o4-mini-2025-04-16",
        "output": [],
        "usage": usage,
    }


def frames(terminal: str, usage: dict | None, *, event_lines: bool = True, error: dict | None = None) -> bytes:
    seq = iter(range(100))

    def ev(payload: dict) -> bytes:
        payload = {"type": payload["type"], "sequence_number": next(seq), **payload}
        return format_event(orjson.dumps(payload), payload["type"] if event_lines else None)

    msg = {"id": "msg_67ccd3acc8d48190a77525dc6de64b4104becd2a1d4ed386", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
    out = [
        ev({"type": "response.created", "response": response("in_progress", None)}),
        ev({"type": "response.in_progress", "response": response("in_progress", None)}),
        ev({"type": "response.output_item.added", "output_index": 0, "item": msg}),
        ev({"type": "response.content_part.added", "item_id": msg["id"], "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
    ]
    for word in ("Hi", " there", ' "usage": {"error": 1}'):
        out.append(ev({"type": "response.output_text.delta", "item_id": msg["id"], "output_index": 0, "content_index": 0, "delta": word, "logprobs": []}))
    out.append(ev({"type": "response.output_text.done", "item_id": msg["id"], "output_index": 0, "content_index": 0, "text": "Hi there", "logprobs": []}))
    out.append(ev({"type": terminal, "response": response(terminal.split(".")[1], usage, error)}))
    return b"".join(out)


def meter(raw: bytes) -> rs.StreamMeter:
    p = SSEParser()
    m = rs.StreamMeter()
    for e in p.feed(raw) + p.flush():
        m.feed(e)
    return m


def test_format_name():
    assert rs.FORMAT == "openai_responses"


def test_usage_from_response():
    u = rs.usage_from_response(response("completed", USAGE))
    assert u == Usage(input=2006, output=300, cache_read=1920, cache_write=0, reasoning=256)
    assert u.total == 2306


def test_usage_recent_cache_write_and_missing_details():
    u = rs.usage_from_response({"usage": {"input_tokens": 50, "output_tokens": 5, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 40}}})
    assert u == Usage(input=50, output=5, cache_write=40)
    assert rs.usage_from_response(response("in_progress", None)) is None
    assert rs.usage_from_response({}) is None


def test_meter_completed():
    m = meter(frames("response.completed", USAGE))
    assert m.finished and m.error is None
    assert m.usage == Usage(input=2006, output=300, cache_read=1920, reasoning=256)


def test_meter_incomplete_is_finished_not_error():
    m = meter(frames("response.incomplete", USAGE))
    assert m.finished and m.error is None and m.usage.output == 300


def test_meter_failed():
    m = meter(frames("response.failed", None, error={"code": "server_error", "message": "The model failed to generate a response."}))
    assert m.finished and m.error == "The model failed to generate a response." and m.usage is None


def test_meter_error_event_then_cut():
    raw = frames("response.completed", USAGE).rsplit(b"event: response.completed", 1)[0]
    raw += b'event: error\ndata: {"type":"error","code":"rate_limit_exceeded","message":"Slow down","param":null,"sequence_number":9}\n\n'
    m = meter(raw)
    assert m.error == "Slow down" and not m.finished and m.usage is None


def test_meter_without_event_lines():
    # some compat servers send only `data:` lines; the type leads the payload
    m = meter(frames("response.completed", USAGE, event_lines=False))
    assert m.finished and m.usage.input == 2006


def test_meter_without_event_lines_type_not_leading():
    payload = orjson.dumps({"sequence_number": 3, "type": "response.completed", "response": response("completed", USAGE)})
    m = meter(format_event(payload))
    assert m.finished and m.usage.output == 300


def test_meter_parses_only_terminal(monkeypatch):
    calls = []
    real = rs._loads
    monkeypatch.setattr(rs, "_loads", lambda d: calls.append(d) or real(d))
    meter(frames("response.completed", USAGE))
    assert len(calls) == 1


def test_stream_error_event():
    raw = rs.stream_error_event(429, "Rate limit reached", sequence_number=12)
    p = SSEParser()
    (ev,) = p.feed(raw)
    assert ev.event == "error"
    assert orjson.loads(ev.data) == {"type": "error", "code": "rate_limit_exceeded", "message": "Rate limit reached", "param": None, "sequence_number": 12}
    assert b'"code":"server_error"' in rs.stream_error_event(503, "x")
    assert b'"sequence_number":0' in rs.stream_error_event(400, "x")
    assert b'"code":"content_filter"' in rs.stream_error_event(400, "x", code="content_filter")
    m = meter(raw)
    assert m.error == "Rate limit reached"


def test_stream_error_event_matches_sdk_type():
    pytest.importorskip("openai")
    from openai.types.responses import ResponseErrorEvent

    (ev,) = SSEParser().feed(rs.stream_error_event(500, "boom", sequence_number=4))
    e = ResponseErrorEvent.model_validate(orjson.loads(ev.data))
    assert (e.type, e.code, e.message, e.sequence_number) == ("error", "server_error", "boom", 4)


@pytest.mark.parametrize("status,etype", [(400, "invalid_request_error"), (401, "invalid_request_error"), (403, "permission_denied"), (404, "invalid_request_error"), (429, "rate_limit_exceeded"), (500, "server_error"), (503, "server_error"), (529, "server_error")])
def test_error_body_is_openai_shape(status, etype):
    err = orjson.loads(rs.error_body(status, "m"))["error"]
    assert err["type"] == etype and err["message"] == "m" and "param" in err and "code" in err


def test_error_message():
    assert rs.error_message(b'{"error":{"message":"Previous response with id \'resp_x\' not found.","type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}}') == "Previous response with id 'resp_x' not found."
    assert rs.error_message(b"upstream connect error") is None
