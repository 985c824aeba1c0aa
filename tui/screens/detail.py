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
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.highlight import highlight
from textual.markup import escape
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

from tui import format as fmt
from tui.client import ControlClient, describe_error
from tui.curl import Curl, NotReplayable, direct, inbound_request, via_sidecar
from tui.replay import replay
from tui.row import RequestRow
from tui.screens.keys import ConfirmScreen

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


TIMING_WIDTH = 60


def timing(row: RequestRow, width: int = TIMING_WIDTH) -> Content:
    """Where the time went, as one bar: failed attempts (failover), waiting for the first byte, then
    streaming, each segment proportional to its share of the total, with the figures underneath."""
    total = row.latency_ms
    if row.pending or not total or total <= 0:
        return Content.assemble(("no timing yet" if row.pending else "no timing recorded", "dim"))
    failed = sum(a["duration_ms"] or 0.0 for a in row.attempts[:-1]) if len(row.attempts) > 1 else 0.0
    failed = min(failed, total)
    first = row.ttft_ms if row.ttft_ms is not None else total
    first = min(max(first, failed), total)
    phases = [("failover", failed, "$text-error"), ("first byte" if row.stream else "answer", first - failed,
              "$text-warning"), ("streaming", total - first, "$text-success")]
    shown = [(name, ms, style) for name, ms, style in phases if ms > 0]
    cells = [max(1, round(width * ms / total)) for _, ms, _ in shown]
    cells[cells.index(max(cells))] += width - sum(cells)  # rounding: the longest phase absorbs it
    parts: list[Part] = [("█" * n, style) for (_, _, style), n in zip(shown, cells)]
    parts.append("\n")
    for i, (name, ms, style) in enumerate(shown):
        parts += [("  " if i else "", ""), ("■ ", style), (f"{name} ", "dim"), fmt.fmt_ms(ms)]
    parts += [("   total ", "dim"), (fmt.fmt_ms(total), "bold")]
    return Content.assemble(*parts)


def headers_view(headers: Any) -> Content:
    """Client → sidecar and provider → sidecar headers, as stored (credentials already `[redacted]`)."""
    if not isinstance(headers, dict) or not any(isinstance(v, dict) and v for v in headers.values()):
        return Content.assemble(("no headers stored (bodies off, or recorded by an older sidecar)", "dim"))
    parts: list[Part] = []
    for side, title in (("request", "from the client"), ("response", "from the provider")):
        values = headers.get(side)
        if not isinstance(values, dict) or not values:
            continue
        if parts:
            parts.append("\n")
        parts += [(title, "bold"), "\n"]
        width = min(max(len(str(k)) for k in values), 32)
        for name, value in sorted(values.items()):
            style = "dim" if value == "[redacted]" else ""
            parts += [(f"  {str(name):<{width}}  ", "$text-primary"), (str(value), style), "\n"]
    return Content.assemble(*parts[:-1])


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


CURL_HIGHLIGHT_CHARS = 20_000
"""Longer commands are shown plain: highlighting runs on the event loop here."""


class CurlScreen(ModalScreen[None]):
    """A curl command for the request, readable and copied to the clipboard (OSC 52) as it is shown.

    Two variants (via the sidecar, direct to the provider); `C` switches and copies the other one. A variant
    that cannot be made shows why instead, and copies nothing."""

    BINDINGS = [
        Binding("escape,q", "close", "Close", id="curl.close"),
        Binding("C", "switch", "Other variant", id="curl.switch"),
        Binding("c", "copy", "Copy again", id="curl.copy"),
    ]

    def __init__(self, variants: dict[str, Curl], shown: str) -> None:
        super().__init__()
        self.variants = variants
        self.shown = shown

    def compose(self) -> ComposeResult:
        with Vertical(id="curl-dialog", classes="dialog"):
            yield Static("", id="curl-title", classes="dialog-title")
            with VerticalScroll(id="curl-scroll"):
                yield Static("", id="curl-command")
            yield Static("", id="curl-note")
            yield Static(Content.assemble(("C", "bold"), " other variant   ", ("c", "bold"), " copy again   ",
                                          ("esc", "bold"), " close"), classes="dialog-hint")  # fmt: skip

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        curl = self.variants[self.shown]
        other = next(v for k, v in self.variants.items() if k != self.shown)
        self.query_one("#curl-title", Static).update(Content.assemble(
            ("curl ", "bold"), (curl.title, "bold $text-primary"), (f"   (C: {other.title})", "dim")))
        if curl.command is None:
            shown = Content.assemble(("no command: ", "$text-warning"), curl.note)
            self.query_one("#curl-note", Static).update("")
        else:
            text = curl.command
            cut = len(text) > BODY_DISPLAY_CHARS
            text = text[:BODY_DISPLAY_CHARS] if cut else text
            shown = highlight(text, language="bash") if len(text) <= CURL_HIGHLIGHT_CHARS else Content(text)
            if cut:
                shown = Content.assemble(shown, ("\n… shown in part; the clipboard has all of it", "$text-warning"))
            self.query_one("#curl-note", Static).update(Content.assemble((curl.note, "dim")))
        self.query_one("#curl-command", Static).update(shown)
        self.action_copy()

    def action_copy(self) -> None:
        curl = self.variants[self.shown]
        if curl.command is None:
            self.app.notify(f"no curl {curl.title}: {curl.note}", severity="warning", markup=False)
            return
        self.app.copy_to_clipboard(curl.command)
        self.app.notify(f"curl {curl.title} copied to the clipboard", markup=False)

    def action_switch(self) -> None:
        self.shown = next(k for k in self.variants if k != self.shown)
        self._show()

    def action_close(self) -> None:
        self.dismiss()


class DetailScreen(Screen[None]):
    """One request, scrollable; `escape` or `q` goes back to the list (k9s-style crumbs).

    Actions: `c` copies a curl for the request (via the sidecar; `C` direct to the provider), `R` replays
    it through the sidecar after asking (it costs money)."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="detail.back"),
        Binding("q", "back", "Back", id="detail.back_q", show=False),
        Binding("c", "copy_curl('sidecar')", "Copy curl", id="detail.copy_curl",
                tooltip="Copy a curl command that sends this request again via the sidecar, and show it."),
        Binding("C", "copy_curl('direct')", "Curl direct", id="detail.copy_curl_direct", show=False,
                tooltip="Copy a curl straight to the provider, the key read from the keyring at run time."),
        Binding("R", "replay", "Replay", id="detail.replay",
                tooltip="Send this request again through the sidecar (asks first: it costs money)."),
    ]  # fmt: skip

    def __init__(self, request_id: str, client: ControlClient, row: RequestRow | None) -> None:
        super().__init__()
        self.request_id = request_id
        self.client = client
        self.row = row
        self.record: dict[str, Any] | None = None
        """The fetched record with bodies, once loaded."""
        self.load_error: str | None = None
        self.providers: list[dict[str, Any]] | None = None
        """`/_sidecar/health`'s providers (for the direct curl); None until read or when it failed."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static("", id="summary")
            yield Static("Attempts", classes="section")
            yield Static("", id="attempts")
            yield Static("Timing", classes="section")
            yield Static("", id="timing")
            yield Static("Usage and cost", classes="section")
            yield Static("", id="usage")
            yield Static("Headers", classes="section")
            yield Static("loading…", id="headers")
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
        self.query_one("#timing", Static).update(timing(row))
        self.query_one("#usage", Static).update(usage(row))

    async def _load(self) -> None:
        try:
            rec = await self.client.request(self.request_id)
        except Exception as exc:  # shown, not raised: an offline sidecar is a normal state
            self.load_error = describe_error(exc)
            msg = Content.assemble((f"could not load: {self.load_error}", "$text-error"))
            if self.row is not None and self.row.pending and self.load_error.endswith("HTTP 404"):
                msg = Content.assemble(("still in flight: its headers and bodies are stored when it finishes "
                                        "(open it again then)", "dim"))
            for wid in ("#headers", "#request-body", "#response-body"):
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
        self.query_one("#headers", Static).update(headers_view(rec.get("headers")))
        truncated = bool(rec.get("bodies_truncated"))
        req, resp = await asyncio.gather(
            asyncio.to_thread(body, rec.get("request_body"), truncated=truncated),
            asyncio.to_thread(body, rec.get("response_body"), truncated=truncated),
        )
        self.query_one("#request-body", Static).update(req)
        self.query_one("#response-body", Static).update(resp)
        try:
            providers = (await self.client.health()).get("providers")
            self.providers = [p for p in providers if isinstance(p, dict)] if isinstance(providers, list) else None
        except Exception:
            self.providers = None  # only the direct curl needs it, and it says so

    def action_back(self) -> None:
        self.dismiss()

    def _loaded(self) -> dict[str, Any] | None:
        """The full record, or None after telling the user why there is none yet."""
        if self.record is None:
            why = f"could not load the request: {self.load_error}" if self.load_error else "still loading the request"
            self.app.notify(why, severity="warning", markup=False)
        return self.record

    def curls(self) -> dict[str, Curl]:
        """Both curl variants of the loaded record ({} when it is not loaded)."""
        if self.record is None:
            return {}
        return {"sidecar": via_sidecar(self.record, self.client.url, token=self.client.has_token),
                "direct": direct(self.record, self.providers)}

    def action_copy_curl(self, variant: str) -> None:
        if self._loaded() is not None:
            self.app.push_screen(CurlScreen(self.curls(), variant))

    def action_replay(self) -> None:
        rec = self._loaded()
        if rec is None:
            return
        try:
            inbound_request(rec)
        except NotReplayable as exc:
            self.app.notify(f"cannot replay: {exc}", severity="warning", markup=False)
            return
        model = rec.get("requested_model") or rec.get("model") or "?"
        served = f" (last time {rec['provider']}/{rec['model']})" if rec.get("provider") and rec.get("model") else ""
        question = (f"Replay to {model}{served}?\nIt goes through the sidecar to the provider again "
                    "and costs money.")

        app, client, rid = self.app, self.client, self.request_id

        async def run() -> None:
            app.notify(f"replaying {rid}…", markup=False)
            try:
                result = await replay(client, rec)
            except Exception as exc:
                app.notify(f"replay failed: {describe_error(exc)}", severity="error", markup=False)
                return
            app.notify(result.describe(rid), severity="information" if result.ok else "error", markup=False)

        def answered(yes: bool | None) -> None:
            if yes:
                # The app runs it, not this screen: leaving the screen must not cut the request off mid-way.
                app.run_worker(run(), group="replay", exit_on_error=False)

        # The model name comes from the client: escaped, so a `[` in it is text, not markup.
        app.push_screen(ConfirmScreen(escape(question)), answered)
