"""Gemini adapter: usage (thoughts folded into output), stream meter, JSON-array streams, errors."""

from __future__ import annotations

import orjson
import pytest

from adapters import gemini as gm
from adapters.ir import Usage
from adapters.sse import SSEParser

# Realistic streamGenerateContent?alt=sse chunks (REST spacing, CRLF separators).
PROMPT_ONLY = b'"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 9}]}'
FINAL_USAGE = (
    b'"usageMetadata": {"promptTokenCount": 9,"candidatesTokenCount": 12,"totalTokenCount": 125,'
    b'"cachedContentTokenCount": 4,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 9}],'
    b'"cacheTokensDetails": [{"modality": "TEXT","tokenCount": 4}],"thoughtsTokenCount": 104}'
)
TAIL = b',"modelVersion": "gemini-2.5-flash","responseId": "mIqsaNfXKp2Oz7IP0Ib-kAU"}'


def text_chunk(text: bytes, usage: bytes = PROMPT_ONLY) -> bytes:
    return (
        b'{"candidates": [{"content": {"parts": [{"text": "' + text + b'"}],"role": "model"},"index": 0}],'
        + usage + TAIL
    )


CHUNKS = [
    b'{"candidates": [{"content": {"parts": [{"text": "**Planning**","thought": true}],"role": "model"},"index": 0}],' + PROMPT_ONLY + TAIL,
    text_chunk(b"The quick"),
    text_chunk(b' brown \\"usageMetadata\\": {\\"promptTokenCount\\": 99999}'),
    b'{"candidates": [{"content": {"parts": [{"functionCall": {"name": "log","args": {"finishReason": "x","error": "y"}}}],"role": "model"},"index": 0}],' + PROMPT_ONLY + TAIL,
    b'{"candidates": [{"content": {"role": "model"},"finishReason": "STOP","index": 0}],' + FINAL_USAGE + TAIL,
]
WANT = Usage(input=9, output=116, cache_read=4, reasoning=104)


def sse(chunks: list[bytes]) -> bytes:
    return b"".join(b"data: " + c + b"\r\n\r\n" for c in chunks)


def meter(raw: bytes) -> gm.StreamMeter:
    p = SSEParser()
    m = gm.StreamMeter()
    for e in p.feed(raw) + p.flush():
        m.feed(e)
    return m


def test_format_name():
    assert gm.FORMAT == "gemini"


def test_usage_from_response():
    body = orjson.loads(b'{"candidates": [{"content": {"parts": [{"text": "Hi"}],"role": "model"},"finishReason": "STOP","index": 0}],' + FINAL_USAGE + TAIL)
    assert gm.usage_from_response(body) == WANT


def test_usage_tool_use_prompt_counts_as_input():
    u = gm.usage_from_response({"usageMetadata": {"promptTokenCount": 100, "toolUsePromptTokenCount": 30, "candidatesTokenCount": 5, "totalTokenCount": 135}})
    assert u == Usage(input=130, output=5)
    assert u.total == 135


def test_usage_absent():
    assert gm.usage_from_response({"candidates": []}) is None
    assert gm.usage_from_response({"usageMetadata": None}) is None


def test_meter_full_stream():
    m = meter(sse(CHUNKS))
    assert m.finished and m.error is None
    assert m.usage == WANT


def test_meter_repeated_usage_not_double_counted_nor_reparsed(monkeypatch):
    calls = []
    real = gm._loads
    monkeypatch.setattr(gm, "_loads", lambda d: calls.append(d) or real(d))
    m = meter(sse(CHUNKS))
    assert m.usage == WANT
    # usage parsed twice (prompt-only once, final once) + one whole-chunk parse for the finish
    # + one for the functionCall chunk whose args merely look like finishReason/error
    assert len(calls) == 4


def test_meter_cumulative_candidates_count():
    chunks = [
        text_chunk(b"a", b'"usageMetadata": {"promptTokenCount": 9,"candidatesTokenCount": %d,"totalTokenCount": %d}' % (n, 9 + n))
        for n in (3, 7, 12)
    ]
    assert meter(sse(chunks)).usage == Usage(input=9, output=12)


def test_meter_tolerates_odd_chunks():
    chunks = [
        b'{"candidates": [{"index": 0}],' + PROMPT_ONLY + TAIL,  # no content
        b'{"candidates": [{"content": {"role": "model"},"index": 0}]' + TAIL,  # no parts, no usage
        b'{"usageMetadata": {"promptTokenCount": 9}}',  # no candidates at all
        b'{"candidates": [{"content": {"parts": [{"text": "","thoughtSignature": "CiIBVKhc7oDcTA=="}],"role": "model"},"finishReason": "SAFETY","index": 0}],' + FINAL_USAGE + TAIL,
    ]
    m = meter(sse(chunks))
    assert m.finished and m.usage == WANT and m.error is None


def test_meter_cut_stream_is_not_finished():
    m = meter(sse(CHUNKS[:-1]))
    assert not m.finished and m.usage == Usage(input=9)


def test_meter_blocked_prompt_is_finished():
    raw = sse([b'{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},"usageMetadata": {"promptTokenCount": 12,"totalTokenCount": 12},"modelVersion": "gemini-2.5-pro"}'])
    m = meter(raw)
    assert m.finished and m.usage == Usage(input=12)


def test_meter_mid_stream_error():
    raw = sse(CHUNKS[:2]) + b'data: {"error": {"code": 503,"message": "The model is overloaded. Please try again later.","status": "UNAVAILABLE"}}\r\n\r\n'
    m = meter(raw)
    assert m.error == "The model is overloaded. Please try again later." and not m.finished


def test_meter_round_trips_own_stream_error():
    m = meter(gm.stream_error_event(429, "Resource has been exhausted (e.g. check quota)."))
    assert m.error == "Resource has been exhausted (e.g. check quota)."


def test_usage_from_json_array_stream():
    body = b"[" + b",\r\n".join(CHUNKS) + b"]"
    assert gm.usage_from_json_array_stream(body) == WANT


def test_usage_from_json_array_stream_last_wins_even_if_not_last_element():
    body = b"[" + b",\n".join([*CHUNKS, b'{"candidates": [{"content": {"parts": [{"text": ""}],"role": "model"},"index": 0}]}']) + b"]"
    assert gm.usage_from_json_array_stream(body) == WANT


def test_usage_from_json_array_stream_truncated():
    body = b"[" + b",\r\n".join(CHUNKS)
    cut = body[: body.rfind(b'"thoughtsTokenCount"')]  # cut inside the final usageMetadata
    assert gm.usage_from_json_array_stream(cut) == Usage(input=9)
    assert gm.usage_from_json_array_stream(body[:-3]) == WANT  # cut after it
    assert gm.usage_from_json_array_stream(b"[") is None
    assert gm.usage_from_json_array_stream(b"") is None
    assert gm.usage_from_json_array_stream(b"[]") is None


def test_usage_from_json_array_stream_single_object():
    assert gm.usage_from_json_array_stream(CHUNKS[-1]) == WANT


GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    529: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
    418: "INVALID_ARGUMENT",
    502: "INTERNAL",
}


@pytest.mark.parametrize("status", sorted(GEMINI_STATUS))
def test_error_body(status):
    body = orjson.loads(gm.error_body(status, "boom"))
    assert body == {"error": {"code": status, "message": "boom", "status": GEMINI_STATUS[status]}}
    assert gm.error_message(gm.error_body(status, "boom")) == "boom"


def test_error_body_reason_detail():
    err = orjson.loads(gm.error_body(400, "API key not valid. Please pass a valid API key.", code="API_KEY_INVALID"))["error"]
    assert err["status"] == "INVALID_ARGUMENT"
    assert err["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert err["details"][0]["reason"] == "API_KEY_INVALID"


@pytest.mark.parametrize("status", [400, 404, 429, 503])
def test_error_body_as_the_sdk_reads_it(status):
    errors = pytest.importorskip("google.genai.errors")
    with pytest.raises(errors.APIError) as exc:
        errors.APIError.raise_error(status, orjson.loads(gm.error_body(status, "boom")), None)
    assert (exc.value.code, exc.value.status, exc.value.message) == (status, GEMINI_STATUS[status], "boom")
    assert isinstance(exc.value, errors.ClientError if status < 500 else errors.ServerError)


def test_stream_error_event_bytes():
    raw = gm.stream_error_event(500, "Internal error encountered.")
    assert raw == b'data: {"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL"}}\n\n'


@pytest.mark.parametrize(
    "body,want",
    [
        (b'{\n  "error": {\n    "code": 429,\n    "message": "You exceeded your current quota.",\n    "status": "RESOURCE_EXHAUSTED",\n    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"}]\n  }\n}\n', "You exceeded your current quota."),
        (b'[{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}]', "API key not valid."),
        (b'{"error": {"code": 500, "status": "INTERNAL"}}', "INTERNAL"),
        (b"<!DOCTYPE html><html>Error 404 (Not Found)</html>", None),
        (b"", None),
        (b"\xc3\x28", None),
        (b"[]", None),
        (b'"just a string"', None),
    ],
)
def test_error_message(body, want):
    assert gm.error_message(body) == want
