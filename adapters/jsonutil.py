"""Defensive readers for JSON from providers, which send nulls, strings and missing fields where numbers and
objects belong (compat servers especially). Shared by every format module."""

from __future__ import annotations

import orjson


def as_count(v: object) -> int:
    """A token count; null, missing or garbage counts 0."""
    return v if type(v) is int else 0


def as_dict(v: object) -> dict:
    return v if type(v) is dict else {}


def loads_or_none(data: bytes) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
