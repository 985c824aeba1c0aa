"""Shared bits of the fakes' request validation (`validate_openai`, `validate_responses`,
`validate_anthropic`, `validate_gemini`).

A validator raises `Invalid` for the first rule a request breaks; `FakeUpstream._endpoint` turns it
into a 400 in the provider's own error shape (formats.md §5) and records it in
`FakeUpstream.rejected`. Every rule must be one the real provider is documented or widely reported
to enforce; each validator cites its source next to the rule.
"""

from __future__ import annotations

from typing import Any


class Invalid(Exception):
    """A request the real provider refuses with 400 invalid_request_error / INVALID_ARGUMENT.

    `message` copies the provider's wording as closely as known; `param` is the offending field
    (OpenAI's `error.param`, Gemini's `BadRequest.fieldViolations[].field`); `code` is OpenAI's
    `error.code`."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def is_int(v: Any) -> bool:
    """A JSON integer (bool is not one, although Python says so)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def json_type(v: Any) -> str:
    """The JSON type of `v` with an article, as OpenAI words it ("an object", "a string", ...)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a decimal"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def listing(values: tuple[str, ...] | list[str]) -> str:
    """OpenAI's enumeration style: 'a', 'b', and 'c' (or 'a' and 'b')."""
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def snake(name: str) -> str:
    """lowerCamel -> snake_case (Google's JSON parser accepts both spellings of a proto field)."""
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def both_cases(*names: str) -> frozenset[str]:
    """The camelCase names plus their snake_case spellings."""
    return frozenset(names) | frozenset(snake(n) for n in names)
