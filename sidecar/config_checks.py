"""The config file's validation vocabulary: one `ConfigError` naming the key, and the checks every section uses.

Kept apart from sidecar/config.py so each section's parser reads as a list of rules, not plumbing.
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """The config file is unreadable or says something the sidecar cannot honour."""


def no_unknown(table: dict[str, Any], where: str, known: set[str]) -> None:
    """A misspelt key (``base_ur``) silently ignored would send traffic somewhere unintended: refuse it."""
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"[{where}] unknown key(s): {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(known))})")


def table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return value


def typed(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"[{where}] {key} must be a {kind.__name__}, got {value!r}")
    return value


def positive_int(table: dict[str, Any], key: str, where: str, *, minimum: int = 1) -> int:
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"[{where}] {key} must be an integer of at least {minimum}, got {value!r}")
    return value


def port(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ConfigError(f"[server] port must be an integer 0-65535, got {value!r}")
    return value
