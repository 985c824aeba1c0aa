"""A one-line banner shown only while the sidecar's request log cannot be written.

The proxy keeps serving during such an outage (disk full, read-only or vanished data dir) and holds records
in memory; this says so, with how many are waiting and how many were dropped, so nobody trusts a history
that is quietly incomplete. Feed it ``/_sidecar/health``'s ``store_health`` (polled) or the data of a
``store`` event (pushed on every change); both have the same shape.
"""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.widgets import Static


class StoreWarning(Static):
    """Hidden while the store is writable; otherwise one line in the theme's error colours."""

    DEFAULT_CSS = """
    StoreWarning {
        display: none;
        height: 1;
        padding: 0 1;
        background: $error;
        color: $text;
    }
    StoreWarning.-shown {
        display: block;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._text: str | None = ""

    def show(self, store_health: dict[str, Any] | None) -> None:
        """Update from a ``store_health`` dict (None: the sidecar runs without a store, nothing to say)."""
        text = describe(store_health)
        if text == self._text:
            return  # a poll every few seconds must not repaint an unchanged line
        self._text = text
        self.set_class(text is not None, "-shown")
        self.update(Content(text or ""))


def describe(store_health: dict[str, Any] | None) -> str | None:
    """The banner text, or None when there is nothing to warn about."""
    if not isinstance(store_health, dict) or store_health.get("writable", True) is not False:
        return None
    held, dropped = store_health.get("backlog") or 0, store_health.get("dropped") or 0
    since = str(store_health.get("since") or "")[11:19]  # HH:MM:SS of the ISO time
    why = store_health.get("last_error") or "unknown error"
    text = f"⚠ request log not writable{f' since {since}' if since else ''} ({why}): {held} records held in memory"
    if dropped:
        text += f", {dropped} dropped"
    return text + " · traffic is unaffected; free disk space or fix the data dir"
