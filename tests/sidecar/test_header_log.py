"""Headers kept in the request log: credentials replaced whatever they hold, the key scrubbed from the rest."""

from __future__ import annotations

from multidict import CIMultiDict

from sidecar.header_log import MAX_HEADERS, MAX_VALUE_CHARS, REDACTED, header_record, loggable

KEY = b"sk-canary-0123456789abcdef"


def test_credentials_are_replaced_and_the_key_is_scrubbed_everywhere_else() -> None:
    got = loggable(CIMultiDict({
        "Authorization": "Bearer sct_client_token", "X-Api-Key": "placeholder", "x-goog-api-key": "AIza...",
        "Cookie": "session=1", "Anthropic-Version": "2023-06-01", "X-Echo": f"key was {KEY.decode()}",
    }), KEY)
    assert got is not None
    assert got["authorization"] == got["x-api-key"] == got["x-goog-api-key"] == got["cookie"] == REDACTED
    assert got["anthropic-version"] == "2023-06-01"
    assert KEY.decode() not in got["x-echo"] and got["x-echo"].startswith("key was ")


def test_repeated_headers_are_joined_and_sizes_are_bounded() -> None:
    headers = CIMultiDict([("Accept", "a"), ("accept", "b")] + [(f"x-{i}", "v") for i in range(300)])
    got = loggable(headers, None)
    assert got is not None and got["accept"] == "a, b"
    assert len(got) == MAX_HEADERS
    long = loggable({"x-long": "y" * (MAX_VALUE_CHARS + 50)}, None)
    assert long is not None and len(long["x-long"]) == MAX_VALUE_CHARS + 1 and long["x-long"].endswith("…")


def test_record_shape() -> None:
    assert header_record(None, None, KEY) is None
    assert header_record({"a": "1"}, None, KEY) == {"request": {"a": "1"}, "response": {}}
