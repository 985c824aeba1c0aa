"""Feed + ControlClient against the fake control API: history, live events, reconnect, SSE parsing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tui.client import ControlClient, SSEEvent, SSEParser
from tui.feed import Feed, FeedState
from tui.model import TrafficModel

if TYPE_CHECKING:
    from conftest import FakeSidecar, Wait

Rec = Callable[..., dict[str, Any]]


@pytest.fixture
async def feed(sidecar: FakeSidecar) -> AsyncIterator[Feed]:
    client = ControlClient(sidecar.url)
    f = Feed(client, TrafficModel(), backoff=(0.02, 0.1))
    task = asyncio.create_task(f.run())
    yield f
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.close()


def test_sse_parser_handles_split_chunks_comments_and_crlf() -> None:
    p = SSEParser()
    out = p.feed(b": ping\n\nevent: attempt\r\ndata: {\"a\":")
    assert out == []
    out = p.feed(b"1}\r\n\r\nevent: x\ndata: l1\ndata: l2\n")
    assert out == [SSEEvent("attempt", b'{"a":1}')]
    assert p.feed(b"\n") == [SSEEvent("x", b"l1\nl2")]
    assert p.feed(b"data: plain\n\n") == [SSEEvent("message", b"plain")]


async def test_loads_history_then_applies_live_events(
    sidecar: FakeSidecar, feed: Feed, wait_until: Wait, make_record: Rec
) -> None:
    m = feed.model
    await wait_until(lambda: feed.status.state is FeedState.CONNECTED and sidecar.subscribers == 1)
    assert len(m) == 2 and {r.id for r in m.newest(2)} == {"r1", "r2"}
    assert feed.status.listen == sidecar.url and feed.status.version == "0.1.0"

    sidecar.publish("request_started", {
        "id": "r3", "ts": "2025-01-01T10:00:03Z", "inbound": "anthropic",
        "requested_model": "smart", "stream": True, "client": "t", "path": "/v1/messages",
    })  # fmt: skip
    await wait_until(lambda: "r3" in m)
    row = m.get("r3")
    assert row is not None and row.pending and m.totals.in_flight == 1

    sidecar.send_raw(b"event: attempt\ndata: {not json\n\n")  # malformed: skipped, stream continues
    sidecar.send_raw(b"event: request_finished\ndata: [1, 2]\n\n")
    sidecar.publish("attempt", {"request_id": "r3", "provider": "openai", "model": "gpt-4.1",
                                "status": 429, "error": "rate limited", "duration_ms": 5})  # fmt: skip
    final = make_record("r3", "2025-01-01T10:00:03Z", inbound="anthropic", stream=True)
    sidecar.publish("request_finished", final)
    await wait_until(lambda: not row.pending)
    assert row.status == 200 and row.cost_usd == 0.0012 and len(m) == 3
    assert feed.status.skipped == 2 and feed.status.state is FeedState.CONNECTED


async def test_reconnects_and_catches_up_after_restart(
    sidecar: FakeSidecar, feed: Feed, wait_until: Wait, make_record: Rec
) -> None:
    m = feed.model
    await wait_until(lambda: feed.status.state is FeedState.CONNECTED and sidecar.subscribers == 1)
    sidecar.publish("request_started", {"id": "inflight", "ts": "2025-01-01T10:00:04Z",
                                        "inbound": "gemini", "requested_model": "g"})  # fmt: skip
    await wait_until(lambda: "inflight" in m)

    await sidecar.stop()
    await wait_until(lambda: feed.status.state is FeedState.RECONNECTING)
    assert "reconnecting to" in feed.status.describe()

    # Served while the TUI was away: must show up from the history reload.
    sidecar.records.insert(0, make_record("missed", "2025-01-01T10:00:05Z"))
    loads = sidecar.history_loads
    await sidecar.start()
    await wait_until(lambda: feed.status.state is FeedState.CONNECTED and "missed" in m)
    assert sidecar.history_loads == loads + 1 and feed.connects == 2
    lost = m.get("inflight")
    assert lost is not None and not lost.pending and lost.error == "sidecar restarted"
    assert m.totals.in_flight == 0 and m.totals.requests == 4


async def test_sidecar_not_running_reports_retrying(wait_until: Wait, dead_url: str) -> None:
    client = ControlClient(dead_url.removeprefix("http://") + "/")  # also checks URL normalizing
    f = Feed(client, TrafficModel(), backoff=(0.02, 0.05))
    task = asyncio.create_task(f.run())
    try:
        await wait_until(lambda: f.status.retry_at is not None)
        text = f.status.describe()
        assert f.status.state is FeedState.CONNECTING and f.connects == 0
        assert text.startswith(f"connecting to {client.url} (retrying") and "refused" in text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


def test_core_modules_import_neither_textual_nor_sidecar() -> None:
    """The feed side must stay UI-free (and `import tui` cheap); the TUI reaches the proxy only
    over HTTP. Checked in a fresh interpreter, as Harlequin's import-hygiene test does."""
    code = (
        "import sys, tui, tui.feed, tui.model, tui.row, tui.client, tui.format, tui.filters, tui.view\n"
        "import tui.spend, tui.providers\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'sidecar'))\n"
        "print(','.join(bad))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
