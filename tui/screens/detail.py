"""Request detail: summary, attempt chain, usage and cost, then both bodies as highlighted JSON.

Bodies live in the sidecar's store, not in the TUI's ring, so they are fetched on open. The
summary is drawn at once from the ring's row (useful even when the sidecar has gone away) and
redrawn from the full record when it arrives.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.highlight import highlight
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui import format as fmt
from tui.client import ControlClient, describe_error
from tui.row import RequestRow

BODY_DISPLAY_CHARS = 200_000
"""Pretty-printed bodies are cut here: highlighting runs in a thread, but the Static still lays
out every line on the event loop (mitmproxy#3918: huge bodies froze the UI)."""

Part = str | tuple[str, str]


def summary(row: RequestRow) -> Content:
    """Who asked for what, where it went, how it ended; assembled, so no text is read as markup."""
    level = fmt.status_level(row)
    colour = {"success": "$text-success", "warning": "$text-warning", "error": "$text-error"}
    lines: list[Part] = [
        ("request  ", "dim"), (row.id, "bold"), ("   ", ""), (row.ts or "?", "dim"), "\n",
        ("route    ", "dim"), fmt.fmt_route(row),
        ("  stream" if row.stream else "", "$text-primary"), "\n",
        ("client   ", "dim"), f"{row.client or '?'}  {row.path or ''}", "\n",
        ("status   ", "dim"), (fmt.fmt_status(row), f"bold {colour.get(level, '$text-primary')}"),
        ("   latency ", "dim"), fmt.fmt_ms(row.latency_ms), ("   ttft ", "dim"), fmt.fmt_ms(row.ttft_ms),
    ]  # fmt: skip
    if row.error:
        lines += ["\n", ("error    ", "dim"), (row.error, "$text-error")]
    return Content.assemble(*lines)


def attempts(row: RequestRow) -> Content:
    """Numbered chain, one line per upstream try: where it went, what came back, how long."""
    if not row.attempts:
        text = "no upstream attempt yet" if row.pending else "no upstream attempt recorded"
        return Content.assemble((text, "dim"))
    parts: list[Part] = []
    for i, att in enumerate(row.attempts, 1):
        ok = att["status"] is not None and att["status"] < 400 and not att["error"]
        status = str(att["status"]) if att["status"] is not None else "no response"
        if i > 1:
            parts.append("\n")
        parts += [
            (f"{i:>2}. ", "dim"),
            (f"{att['provider']}/{att['model']}", "bold"),
            "  ", (status, "$text-success" if ok else "$text-error"),
            ("  ", ""), fmt.fmt_ms(att["duration_ms"]),
        ]  # fmt: skip
        if att["error"]:
            parts += ["  ", (att["error"], "$text-error")]
    return Content.assemble(*parts)


def usage(row: RequestRow) -> Content:
    fields = [
        ("input", row.input_tokens), ("output", row.output_tokens),
        ("cache read", row.cache_read_tokens), ("cache write", row.cache_write_tokens),
        ("reasoning", row.reasoning_tokens),
    ]  # fmt: skip
    parts: list[Part] = []
    for name, value in fields:
        parts += [(f"{name} ", "dim"), fmt.fmt_tokens(value), "   "]
    parts += [("\ncost ", "dim"), (fmt.fmt_cost(row.cost_usd), "bold")]
    if row.cost_usd is None and row.has_usage:
        parts.append(("  (no price known for this model)", "$text-warning"))
    if row.usage_source:
        parts.append((f"   usage {row.usage_source}", "dim"))
    return Content.assemble(*parts)


def cost_formula(breakdown: Any) -> Content:
    """The record's cost ledger: tokens × USD per million per meter, and where the rates came from."""
    if not isinstance(breakdown, dict):
        return Content("")
    parts: list[Part] = []
    for m in breakdown.get("meters") or []:
        if isinstance(m, dict):
            parts += [(f"\n  {m.get('meter', '?'):<26}", "dim"),
                      f"{m.get('tokens', 0):>9,} × ${m.get('usd_per_mtok', 0):g}/M = ",
                      (fmt.fmt_cost(m.get("usd")), "bold")]
    if note := breakdown.get("note"):
        parts.append((f"\n  {note}", "dim"))
    parts.append((f"\n  prices: {breakdown.get('source', '?')}", "dim"))
    return Content.assemble(*parts)


def body(text: Any, *, truncated: bool) -> Content:
    """Pretty-print JSON (else show the raw text, e.g. a recorded SSE stream) and highlight it.

    CPU-bound for big bodies, so the screen calls it through `asyncio.to_thread`."""
    if not isinstance(text, str) or not text:
        return Content.assemble(("(not recorded)", "dim"))
    try:
        pretty, language = orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode(), "json"
    except orjson.JSONDecodeError:
        pretty, language = text, "text"
    note = ""
    if len(pretty) > BODY_DISPLAY_CHARS:
        note = f"… {len(pretty) - BODY_DISPLAY_CHARS:,} more characters not shown"
        pretty = pretty[:BODY_DISPLAY_CHARS]
    if truncated:
        note = (note + "; " if note else "") + "body was truncated by the sidecar when stored"
    content = highlight(pretty, language=language)
    return Content.assemble(content, ("\n" + note, "$text-warning")) if note else content


class DetailScreen(Screen[None]):
    """One request, scrollable; `escape` or `q` goes back to the list (k9s-style crumbs)."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="detail.back"),
        Binding("q", "back", "Back", id="detail.back_q", show=False),
    ]

    def __init__(self, request_id: str, client: ControlClient, row: RequestRow | None) -> None:
        super().__init__()
        self.request_id = request_id
        self.client = client
        self.row = row
        self.record: dict[str, Any] | None = None
        """The fetched record with bodies, once loaded."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static("", id="summary")
            yield Static("Attempts", classes="section")
            yield Static("", id="attempts")
            yield Static("Usage and cost", classes="section")
            yield Static("", id="usage")
            yield Static("Request body", classes="section")
            yield Static("loading…", id="request-body", classes="body")
            yield Static("Response body", classes="section")
            yield Static("loading…", id="response-body", classes="body")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail").focus()
        if self.row is not None:
            self._show(self.row)
        else:
            self.query_one("#summary", Static).update(f"request {self.request_id}")
        self.run_worker(self._load(), exclusive=True, group="detail")

    def _show(self, row: RequestRow) -> None:
        self.query_one("#summary", Static).update(summary(row))
        self.query_one("#attempts", Static).update(attempts(row))
        self.query_one("#usage", Static).update(usage(row))

    async def _load(self) -> None:
        try:
            rec = await self.client.request(self.request_id)
        except Exception as exc:  # shown, not raised: an offline sidecar is a normal state
            msg = Content.assemble((f"could not load: {describe_error(exc)}", "$text-error"))
            for wid in ("#request-body", "#response-body"):
                self.query_one(wid, Static).update(msg)
            return
        self.record = rec
        try:
            self.row = RequestRow.from_record(rec)
            self._show(self.row)
            self.query_one("#usage", Static).update(
                Content.assemble(usage(self.row), cost_formula(rec.get("cost_breakdown"))))
        except ValueError:
            pass  # no usable id in the answer: keep the summary we had
        truncated = bool(rec.get("bodies_truncated"))
        req, resp = await asyncio.gather(
            asyncio.to_thread(body, rec.get("request_body"), truncated=truncated),
            asyncio.to_thread(body, rec.get("response_body"), truncated=truncated),
        )
        self.query_one("#request-body", Static).update(req)
        self.query_one("#response-body", Static).update(resp)

    def action_back(self) -> None:
        self.dismiss()
