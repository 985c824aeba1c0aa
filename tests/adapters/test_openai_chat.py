"""OpenAI Chat Completions adapter: usage, stream meter, error shapes."""

from __future__ import annotations

import orjson
import pytest

from adapters import openai_chat as oc
from adapters.ir import Usage
from adapters.sse import SSEEvent, SSEParser

ID = b'"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_1d2e3f"'


def chunk(choices: bytes, usage: bytes | None = b"null") -> bytes:
    tail = b"" if usage is None else b',"usage":' + usage
    return b"data: {" + ID + b',"choices":' + choices + tail + b"}\n\n"


USAGE = (
    b'{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,'
    b'"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":20,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
)


def stream(include_usage: bool) -> bytes:
    u = b"null" if include_usage else None
    parts = [
        chunk(b'[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]', u),
        chunk(b'[{"index":0,"delta":{"content":"The usage"},"logprobs":null,"finish_reason":null}]', u),
        chunk(b'[{"index":0,"delta":{"content":" of \\"usage\\": {}"},"logprobs":null,"finish_reason":null}]', u),
        chunk(
            b'[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_abc","type":"function",'
            b'"function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]',
            u,
        ),
        chunk(
            b'[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"error\\": 1}"}}]},'
            b'"logprobs":null,"finish_reason":null}]',
            u,
        ),
        chunk(b'[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]', u),
    ]
    if include_usage:
        parts.append(chunk(b"[]", USAGE))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def events(raw: bytes) -> list[SSEEvent]:
    p = SSEParser()
    return p.feed(raw) + p.flush()


def meter(raw: bytes) -> oc.StreamMeter:
    m = oc.StreamMeter()
    for ev in events(raw):
        m.feed(ev)
    return m


def test_format_name():
    assert oc.FORMAT == "openai_chat"


def test_usage_from_response():
    body = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "o4-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi", "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": orjson.loads(USAGE),
    }
    u = oc.usage_from_response(body)
    assert u == Usage(input=1117, output=46, cache_read=1024, cache_write=0, reasoning=20)
    assert u.total == 1163


def test_usage_cache_write_and_null_details():
    u = oc.usage_from_response(
        {
            "usage": {
                "prompt_tokens": 500,
                "completion_tokens": 10,
                "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 300},
                "completion_tokens_details": None,
            }
        }
    )
    assert u == Usage(input=500, output=10, cache_read=100, cache_write=300, reasoning=0)
    # compat providers: details missing, counts null
    assert oc.usage_from_response({"usage": {"prompt_tokens": 3, "completion_tokens": None}}) == Usage(input=3)


def test_usage_absent():
    assert oc.usage_from_response({"id": "x", "choices": []}) is None
    assert oc.usage_from_response({"usage": None}) is None


def test_meter_without_include_usage():
    m = meter(stream(include_usage=False))
    assert m.finished and m.usage is None and m.error is None


def test_meter_with_include_usage():
    m = meter(stream(include_usage=True))
    assert m.finished and m.error is None
    assert m.usage == Usage(input=1117, output=46, cache_read=1024, reasoning=20)


def test_meter_parses_only_the_usage_chunk(monkeypatch):
    calls = []
    real = oc._loads
    monkeypatch.setattr(oc, "_loads", lambda d: calls.append(d) or real(d))
    m = meter(stream(include_usage=True))
    assert len(calls) == 1 and b'"choices":[]' in calls[0]
    assert m.usage is not None


def test_meter_groq_usage_in_x_groq():
    raw = chunk(
        b'[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]', None
    ).replace(b"}\n\n", b',"x_groq":{"id":"req_01","usage":{"prompt_tokens":40,"completion_tokens":7,"total_tokens":47}}}\n\n')
    m = meter(raw + b"data: [DONE]\n\n")
    assert m.usage == Usage(input=40, output=7) and m.finished


def test_meter_cumulative_usage_on_every_chunk_is_not_double_counted():
    # vLLM continuous_usage_stats: each chunk carries the running total
    raw = b"".join(
        chunk(b'[{"index":0,"delta":{"content":"x"},"finish_reason":null}]', b'{"prompt_tokens":9,"completion_tokens":%d}' % i)
        for i in range(1, 6)
    )
    assert meter(raw).usage == Usage(input=9, output=5)


def test_meter_mid_stream_error():
    raw = stream(include_usage=False).split(b"data: [DONE]")[0]
    raw += b'data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}\n\n'
    m = meter(raw)
    assert m.error == "The server had an error while processing your request."
    assert not m.finished


def test_meter_round_trips_own_stream_error():
    m = meter(oc.stream_error_event(503, "upstream unavailable"))
    assert m.error == "upstream unavailable" and not m.finished


def test_is_usage_only_chunk():
    usage_chunk = events(chunk(b"[]", USAGE))[0].data
    assert oc.is_usage_only_chunk(usage_chunk)
    for ev in events(stream(include_usage=True))[:-2]:
        assert not oc.is_usage_only_chunk(ev.data)
    # usage riding on a chunk that still has choices (DeepSeek-style) must not be stripped
    assert not oc.is_usage_only_chunk(
        events(chunk(b'[{"index":0,"delta":{},"finish_reason":"stop"}]', USAGE))[0].data
    )
    assert not oc.is_usage_only_chunk(b"[DONE]")
    assert not oc.is_usage_only_chunk(b'{"usage": {"prompt_tokens": 1}, "choices": [')  # truncated


OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", None),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
    529: ("server_error", None),
    418: ("invalid_request_error", None),
    502: ("server_error", None),
}


@pytest.mark.parametrize("status", sorted(OPENAI_TYPES))
def test_error_body(status):
    body = orjson.loads(oc.error_body(status, "boom"))
    assert set(body) == {"error"}
    err = body["error"]
    assert err == {"message": "boom", "type": OPENAI_TYPES[status][0], "param": None, "code": OPENAI_TYPES[status][1]}
    assert oc.error_message(oc.error_body(status, "boom")) == "boom"


def test_error_body_explicit_code():
    err = orjson.loads(oc.error_body(429, "quota", code="insufficient_quota"))["error"]
    assert err["code"] == "insufficient_quota" and err["type"] == "rate_limit_exceeded"
    err = orjson.loads(oc.error_body(404, "no such model", code="model_not_found"))["error"]
    assert err["code"] == "model_not_found"


def test_error_body_as_the_sdk_reads_it():
    openai = pytest.importorskip("openai")
    body = orjson.loads(oc.error_body(401, "Incorrect API key provided"))
    e = openai.APIError("Incorrect API key provided", None, body=body["error"])  # type: ignore[arg-type]
    assert (e.type, e.code, e.param) == ("invalid_request_error", "invalid_api_key", None)


def test_stream_error_event_bytes():
    raw = oc.stream_error_event(500, "boom")
    assert raw.startswith(b"data: {") and raw.endswith(b"}\n\n") and b"event:" not in raw
    (ev,) = events(raw)
    assert orjson.loads(ev.data)["error"]["type"] == "server_error"


@pytest.mark.parametrize(
    "body,want",
    [
        (b'{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,"code":"rate_limit_exceeded"}}', "Rate limit reached for gpt-4o"),
        (b'{"error":"model \\"llama9\\" not found, try pulling it first"}', 'model "llama9" not found, try pulling it first'),
        (b'{"error":{"message":"","type":"server_error"}}', "server_error"),
        (b'{"error":{"code":402,"message":"Insufficient credits"}}', "Insufficient credits"),
        (b'{"message":"bare"}', "bare"),
        (b"<html><body>502 Bad Gateway</body></html>", None),
        (b"", None),
        (b"\xff\xfe\x00", None),
        (b"null", None),
        (b"[]", None),
        (b"42", None),
        (b'{"error":null}', None),
        (b"[" * 2000 + b"]" * 2000, None),
    ],
)
def test_error_message(body, want):
    assert oc.error_message(body) == want
