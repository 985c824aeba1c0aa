"""`/_sidecar/latency`: exact percentiles, tokens/s and bucket edges from a real SQLite store, the HTTP
endpoint (bad params, empty log, `end`), and real traffic through the proxy showing up per provider+model."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import orjson
import pytest

from sidecar.latency_stats import METRICS, WINDOWS, compute, parse_end, window_edges
from sidecar.records import RequestRecord
from sidecar.store import RequestStore

if TYPE_CHECKING:  # only a type: importing `conftest` clashes with tests/tui's when both are collected
    from conftest import Sidecar

END = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
"""A bucket edge for every window, so windows end exactly here."""
_ids = count()


def rec(ts: datetime | str, provider: str | None = "openai", model: str | None = "gpt-4.1", **over) -> RequestRecord:
    stamp = ts if isinstance(ts, str) else ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fields = {"stream": False, "status": 200, "latency_ms": 500.0, "ttft_ms": None, "output_tokens": 10, **over}
    return RequestRecord(id=f"r{next(_ids):06d}", ts=stamp, inbound="openai_chat", requested_model=model or "x",
                         provider=provider, model=model, **fields)


@pytest.fixture
def store(tmp_path: Path):
    s = RequestStore(tmp_path / "requests.db")
    s.open()
    yield s
    s.close()


def fill(store: RequestStore, records: list[RequestRecord]) -> None:
    for r in records:
        store.add(r)
    store.flush_sync()


def test_percentiles_errors_and_tokens_per_s_are_exact(store):
    t = END - timedelta(minutes=5)
    records = [rec(t, latency_ms=100.0 * i) for i in range(1, 21)]  # 100..2000 ms, all fine
    records += [
        rec(t, status=429, latency_ms=5.0),                                # error: not a fast answer
        rec(t, status=None, latency_ms=7.0),                               # no response at all
        rec(t, status=200, error="stream broke", latency_ms=9.0),          # broke after 200: an error
    ]
    # Streams on another model: tokens/s = output_tokens / ((latency - ttft) / 1000).
    records += [
        rec(t, model="gpt-4o-mini", stream=True, latency_ms=3000.0, ttft_ms=1000.0, output_tokens=100),  # 50/s
        rec(t, model="gpt-4o-mini", stream=True, latency_ms=1200.0, ttft_ms=200.0, output_tokens=200),   # 200/s
        rec(t, model="gpt-4o-mini", stream=True, latency_ms=600.0, ttft_ms=100.0, output_tokens=10),     # 20/s
        rec(t, model="gpt-4o-mini", stream=True, latency_ms=400.0, ttft_ms=400.0, output_tokens=10),  # no time left
        rec(t, model="gpt-4o-mini", stream=True, latency_ms=900.0, ttft_ms=300.0, output_tokens=0),   # no output
    ]
    fill(store, records)
    data = compute(store, "1h", END)

    assert [(s["provider"], s["model"]) for s in data["series"]] == [("openai", "gpt-4.1"), ("openai", "gpt-4o-mini")]
    main, streams = data["series"]
    assert main["requests"] == 23 and main["errors"] == 3
    # Nearest rank over the 20 successes: p50 = 10th value, p95 = 19th; errors' 5-9 ms never count.
    assert main["latency_ms_p50"] == 1000.0 and main["latency_ms_p95"] == 1900.0
    assert main["ttft_ms_p50"] is None and main["tokens_per_s_p50"] is None and main["streams"] == 0

    assert streams["requests"] == 5 and streams["errors"] == 0 and streams["streams"] == 3
    assert streams["tokens_per_s_p50"] == 50.0  # median of 20, 50, 200
    assert streams["ttft_ms_p50"] == 300.0 and streams["ttft_ms_p95"] == 1000.0  # of 100, 200, 300, 400, 1000

    totals = data["totals"]
    assert totals["requests"] == 28 and totals["errors"] == 3 and totals["streams"] == 3
    assert totals["latency_ms_p95"] == 2000.0  # of 25 successes (…, 1900, 2000, 3000): the 24th value
    assert totals["tokens_per_s_p50"] == 50.0
    assert "latency_ms - ttft_ms" in data["tokens_per_s"]


def test_buckets_and_window_edges(store):
    n, step = WINDOWS["15m"]  # 30 buckets of 30 s
    start = END - timedelta(seconds=n * step)
    fill(store, [
        rec(start - timedelta(milliseconds=1), latency_ms=1.0),       # just before the window: out
        rec(start, latency_ms=10.0),                                  # exactly at the start edge: bucket 0
        rec(start + timedelta(seconds=29.999), latency_ms=20.0),      # still bucket 0
        rec(start + timedelta(seconds=30), latency_ms=30.0),          # next edge: bucket 1
        # Other stored spellings of a UTC time: no milliseconds, and an explicit +00:00 offset.
        rec((start + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ"), latency_ms=40.0),
        rec((start + timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%S+00:00"), latency_ms=50.0),
        rec(END - timedelta(milliseconds=1), latency_ms=60.0),        # last bucket
        rec(END, latency_ms=70.0),                                    # the end edge belongs to the next window
    ])
    data = compute(store, "15m", END)
    assert (data["buckets"], data["bucket_s"], data["window_s"]) == (30, 30, 900)
    assert data["start"] == "2026-01-31T11:45:00Z" and data["end"] == "2026-01-31T12:00:00Z"
    b = data["totals"]["buckets"]
    assert set(b) == set(METRICS) and all(len(col) == 30 for col in b.values())
    assert b["requests"][:4] == [2, 1, 1, 1] and b["requests"][-1] == 1 and sum(b["requests"]) == 6
    assert b["latency_ms_p50"][:4] == [10.0, 30.0, 40.0, 50.0] and b["latency_ms_p95"][0] == 20.0
    assert b["latency_ms_p50"][4] is None and b["requests"][4] == 0  # an empty bucket: no data, not zero
    assert b["latency_ms_p50"][-1] == 60.0
    assert data["series"][0]["buckets"]["requests"] == b["requests"]  # one series: the same figures


def test_window_end_rounds_up_to_a_bucket_edge():
    start, stop, step = window_edges("15m", datetime(2026, 1, 31, 12, 0, 10, tzinfo=UTC))
    assert step == 30 and stop == datetime(2026, 1, 31, 12, 0, 30, tzinfo=UTC).timestamp()
    assert stop - start == 900
    start, stop, step = window_edges("24h", datetime(2026, 1, 31, 12, 10, tzinfo=UTC))
    assert step == 1800 and stop == datetime(2026, 1, 31, 12, 30, tzinfo=UTC).timestamp() and stop - start == 86400
    assert parse_end("2026-01-31T14:00:00 02:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)  # `+` sent unescaped
    assert parse_end("2026-01-31T12:00:00") == END  # naive = UTC
    with pytest.raises(ValueError):
        parse_end("0001-01-01T00:00:00Z")


def test_empty_or_missing_log(store):
    for source in (store, None):
        data = compute(source, "6h", END)
        assert data["series"] == [] and data["buckets"] == 36 and data["bucket_s"] == 600
        assert data["totals"]["requests"] == 0 and data["totals"]["latency_ms_p50"] is None
        assert data["totals"]["buckets"]["requests"] == [0] * 36
        assert data["totals"]["buckets"]["ttft_ms_p95"] == [None] * 36


def test_query_reads_through_the_ts_index(store):
    from sidecar.latency_stats import _SQL

    with store.reader() as conn:
        plan = " ".join(str(row) for row in conn.execute("EXPLAIN QUERY PLAN " + _SQL, ("a", "b")))
    assert "idx_requests_ts" in plan and "SCAN requests" not in plan


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with http.get(url) as resp:
        return resp.status, orjson.loads(await resp.read())


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def test_endpoint_bad_params_and_end(sidecar: Sidecar, http):
    for query in ("window=2h", "window=", "end=yesterday", "end=0001-01-01T00:00:00Z", "window=1h&end=2026-13-01"):
        status, body = await get(http, f"{sidecar.url}/_sidecar/latency?{query}")
        assert status == 400, query
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]
    status, body = await get(http, f"{sidecar.url}/_sidecar/latency")
    assert status == 200 and body["window"] == "1h" and body["series"] == [] and body["buckets"] == 60

    sidecar.store.add(rec(END - timedelta(minutes=1), provider="anthropic", model="claude-haiku-4-5",
                          stream=True, latency_ms=1500.0, ttft_ms=500.0, output_tokens=80))
    await sidecar.store.flush()
    status, body = await get(http, f"{sidecar.url}/_sidecar/latency?window=15m&end=2026-01-31T12:00:00Z")
    assert status == 200 and body["end"] == "2026-01-31T12:00:00Z"
    [s] = body["series"]
    assert (s["provider"], s["model"], s["ttft_ms_p50"], s["latency_ms_p50"]) == (
        "anthropic", "claude-haiku-4-5", 500.0, 1500.0)
    assert s["tokens_per_s_p50"] == 80.0
    assert s["buckets"]["requests"][-3:] == [0, 1, 0]  # 11:59:00 opens the second-last 30 s bucket


async def test_real_traffic_appears_per_provider_and_model(sidecar: Sidecar, http):
    """Requests through the proxy (a stream and a plain call) land in the right series with TTFT for the stream."""
    chat = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with http.post(f"{sidecar.url}/v1/chat/completions", data=orjson.dumps(chat)) as resp:
        assert resp.status == 200
        await resp.read()
    msg = {"model": "anthropic/claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(f"{sidecar.url}/v1/messages", data=orjson.dumps(msg)) as resp:
        assert resp.status == 200
        await resp.read()
    async with asyncio.timeout(5):
        while True:  # the record is final once the stream's end has been written
            await sidecar.store.flush()
            status, body = await get(http, f"{sidecar.url}/_sidecar/latency?window=15m")
            if body["totals"]["requests"] == 2 and body["totals"]["latency_ms_p50"] is not None \
                    and len(body["totals"]["buckets"]["latency_ms_p50"]) == 30 and body["totals"]["streams"] == 1:
                break
            await asyncio.sleep(0.02)
    by_key = {(s["provider"], s["model"]): s for s in body["series"]}
    assert set(by_key) == {("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")}
    stream, plain = by_key[("openai", "gpt-4o-mini")], by_key[("anthropic", "claude-haiku-4-5")]
    assert stream["ttft_ms_p50"] is not None and stream["ttft_ms_p50"] <= stream["latency_ms_p50"]
    assert stream["streams"] == 1 and stream["tokens_per_s_p50"] > 0
    assert plain["ttft_ms_p50"] is None and plain["latency_ms_p50"] > 0 and plain["errors"] == 0
