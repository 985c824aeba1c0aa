"""Edits to a request body that is otherwise forwarded byte for byte (same format in and out).

Only the model name changes (``openai/gpt-4o-mini`` → ``gpt-4o-mini``) and, for OpenAI chat streams,
the sidecar may ask for the usage chunk. Everything else the client sent stays as it was: unknown and
future fields, key order, number formatting.
"""

from __future__ import annotations

import re
from typing import Any

import orjson


def rewrite_model(body: bytes, parsed: dict[str, Any], new_model: str) -> bytes:
    """Replace the top-level ``model`` value.

    A bytes substitution keeps the body untouched elsewhere. It is used only when the
    ``"model": "<old>"`` pair occurs exactly once in the body (so it must be the top-level one);
    otherwise the body is re-serialised from the parsed object, which is equivalent JSON.
    """
    old = parsed.get("model")
    if old == new_model:
        return body
    if isinstance(old, str):
        pattern = re.compile(rb'"model"\s*:\s*' + re.escape(orjson.dumps(old)))
        matches = pattern.findall(body)
        if len(matches) == 1:
            return pattern.sub(lambda _m: b'"model":' + orjson.dumps(new_model), body, count=1)
    return orjson.dumps({**parsed, "model": new_model})


def with_stream_usage(parsed: dict[str, Any], new_model: str) -> bytes:
    """The body with ``stream_options.include_usage`` on, so a stream reports its tokens.

    The client did not ask for the usage chunk, so the relay strips it again on the way back.
    """
    options = parsed.get("stream_options")
    options = dict(options) if isinstance(options, dict) else {}
    options["include_usage"] = True
    return orjson.dumps({**parsed, "model": new_model, "stream_options": options})


def wants_stream_usage(parsed: dict[str, Any]) -> bool:
    options = parsed.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True
