"""RequestStore against real SQLite files in tmp_path."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sidecar.records import Attempt, RequestRecord
from sidecar.store import RequestStore

REPO = Path(__file__).resolve().parents[1]


def rec(n: int, **kw) -> RequestRecord:
    """Record n, one second after record n-1 (so id order == time order)."""
    base = dict(
        id=f"req-{n:04d}",
        ts=f"2025-01-01T00:{n // 60:02d}:{n % 60:02d}.000000+00:00",
        inbound="openai_chat",
        requested_model="gpt",
        provider="openai",
        model="gpt-4o",
        status=200,
    )
    return RequestRecord(**{**base, **kw})


@pytest.fixture
def store(tmp_path: Path):
    s = RequestStore(tmp_path / "sub" / "requests.db", body_cap=16)
    s.open()
    yield s
    s.close()


async def test_round_trip(store: RequestStore) -> None:
    full = rec(
        1, stream=True, latency_ms=120.5, ttft_ms=30.0, input_tokens=10, output_tokens=5,
        cache_read_tokens=2, cache_write_tokens=1, reasoning_tokens=3, cost_usd=0.0012,
        usage_source="reported", error=None, client="curl/8", path="/v1/chat/completions",
        attempts=[Attempt("anthropic", "claude", 529, "overloaded", 12.5),
                  Attempt("openai", "gpt-4o", 200)],
    )
    store.add(full)
    await store.flush()
    [row] = store.recent()
    assert list(row) == list(full.to_dict())
    assert row == full.to_dict()
    assert row["stream"] is True
    assert row["attempts"][0] == {"provider": "anthropic", "model": "claude", "status": 529,
                                  "error": "overloaded", "duration_ms": 12.5}


async def test_newest_first_and_keyset_pagination(store: RequestStore) -> None:
    for n in [3, 1, 5, 2, 4]:
        store.add(rec(n))
    store.add(rec(6, ts=rec(5).ts))  # same ts as req-0005: id breaks the tie
    await store.flush()
    ids = lambda rows: [r["id"] for r in rows]  # noqa: E731
    assert ids(store.recent()) == [f"req-000{n}" for n in (6, 5, 4, 3, 2, 1)]
    page1 = store.recent(2)
    page2 = store.recent(2, before=page1[-1]["id"])
    page3 = store.recent(2, before=page2[-1]["id"])
    assert ids(page1 + page2 + page3) == ids(store.recent())
    assert store.recent(2, before="req-0001") == []
    assert store.recent(before="no-such-id") == []


async def test_filters(store: RequestStore) -> None:
    store.add(rec(1))
    store.add(rec(2, provider="anthropic", model="claude", status=429))
    store.add(rec(3, provider="anthropic", model="haiku"))
    await store.flush()
    assert [r["id"] for r in store.recent(provider="anthropic")] == ["req-0003", "req-0002"]
    assert [r["id"] for r in store.recent(model="claude")] == ["req-0002"]
    assert [r["id"] for r in store.recent(status=200)] == ["req-0003", "req-0001"]
    assert store.recent(provider="anthropic", status=200, model="claude") == []


async def test_get_with_bodies_and_truncation(store: RequestStore) -> None:
    store.add(rec(1), request_body=b'{"q": 1}', response_body=b"x" * 40)
    store.add(rec(2))
    store.add(rec(3), request_body=b"\xff\xfe ok")
    await store.flush()
    got = store.get("req-0001")
    assert got is not None
    assert got["request_body"] == '{"q": 1}'
    assert got["response_body"] == "x" * 16  # body_cap=16
    assert got["bodies_truncated"] is True
    assert {k: got[k] for k in rec(1).to_dict()} == rec(1).to_dict()
    no_bodies = store.get("req-0002")
    assert no_bodies is not None
    assert no_bodies["request_body"] is None and no_bodies["response_body"] is None
    assert no_bodies["bodies_truncated"] is False
    bad_utf8 = store.get("req-0003")
    assert bad_utf8 is not None and bad_utf8["request_body"].endswith(" ok")
    assert bad_utf8["bodies_truncated"] is False
    assert store.get("missing") is None


async def test_same_id_replaces_row_and_keeps_earlier_body(store: RequestStore) -> None:
    store.add(rec(1, status=None), request_body=b"req")
    await store.flush()
    store.add(rec(1, status=200, output_tokens=9), response_body=b"resp")
    await store.flush()
    [row] = store.recent()
    assert (row["status"], row["output_tokens"]) == (200, 9)
    got = store.get("req-0001")
    assert got is not None and (got["request_body"], got["response_body"]) == ("req", "resp")


async def test_same_id_twice_in_one_batch_ends_as_the_later_add(store: RequestStore) -> None:
    """Stream start and stream end often land in one batch, i.e. in one multi-row statement."""
    store.add(rec(1, status=None), request_body=b"req")
    store.add(rec(2))
    store.add(rec(1, status=200, output_tokens=9), response_body=b"resp")
    await store.flush()
    assert {r["id"]: (r["status"], r["output_tokens"]) for r in store.recent()} == {
        "req-0001": (200, 9), "req-0002": (200, None)}
    got = store.get("req-0001")
    assert got is not None and (got["request_body"], got["response_body"]) == ("req", "resp")


async def test_a_large_burst_is_written_whole_and_exact(store: RequestStore) -> None:
    """More rows than one batch holds, cut into every statement size, some with bodies and some without."""
    count = 64 * 5 + 16 * 2 + 4 + 3
    for n in range(1, count + 1):
        body = f"body {n}".encode() if n % 3 else None
        store.add(rec(n, output_tokens=n), request_body=body)
    await store.flush()
    rows = store.recent(1000)
    assert len(rows) == count
    assert all(row["output_tokens"] == int(row["id"][4:]) for row in rows)
    for n in (1, 2, 3, 64, 65, count - 1, count):
        got = store.get(f"req-{n:04d}")
        assert got is not None and got["output_tokens"] == n
        assert got["request_body"] == (f"body {n}" if n % 3 else None)


async def test_add_snapshots_the_record(store: RequestStore) -> None:
    r = rec(1, attempts=[Attempt("openai", "gpt-4o")])
    store.add(r)
    r.status = 500
    r.attempts.append(Attempt("x", "y"))
    await store.flush()
    [row] = store.recent()
    assert row["status"] == 200 and len(row["attempts"]) == 1


async def test_stats(store: RequestStore) -> None:
    store.add(rec(0, ts="2024-12-31T23:59:59+00:00", cost_usd=100.0))  # before `since`
    store.add(rec(1, input_tokens=100, output_tokens=10, cost_usd=0.5, latency_ms=100, ttft_ms=10))
    store.add(rec(2, input_tokens=200, output_tokens=20, cost_usd=0.25, latency_ms=300, ttft_ms=30))
    store.add(rec(3, model="gpt-x", input_tokens=50, output_tokens=5, latency_ms=200))
    store.add(rec(4, provider="anthropic", model="claude", status=529, latency_ms=50))
    store.add(rec(5, provider="anthropic", model="claude", status=None, cache_read_tokens=7))
    store.add(rec(6, provider="gemini", model="flash", input_tokens=1, reasoning_tokens=4,
                  cost_usd=2.0))
    await store.flush()

    s = store.stats(since="2025-01-01T00:00:00Z")
    assert s["since"] == "2025-01-01T00:00:00Z"
    t = s["totals"]
    assert (t["requests"], t["errors"]) == (6, 2)
    assert (t["input_tokens"], t["output_tokens"], t["cache_read_tokens"]) == (351, 35, 7)
    assert (t["cache_write_tokens"], t["reasoning_tokens"]) == (0, 4)
    assert t["cost_usd"] == pytest.approx(2.75)
    assert t["unpriced_requests"] == 2  # req 3 (gpt-x) and req 5 (cache tokens, no cost)
    assert (t["latency_ms_p50"], t["latency_ms_p95"]) == (100, 300)
    assert (t["ttft_ms_p50"], t["ttft_ms_p95"]) == (10, 30)

    assert [p["provider"] for p in s["by_provider"]] == ["gemini", "openai", "anthropic"]
    anthropic = s["by_provider"][2]
    assert (anthropic["requests"], anthropic["errors"], anthropic["unpriced_requests"]) == (2, 2, 1)
    assert anthropic["cost_usd"] is None  # only unpriced usage: unknown, not $0
    assert anthropic["ttft_ms_p50"] is None

    models = {(m["provider"], m["model"]): m for m in s["by_model"]}
    assert list(models)[:2] == [("gemini", "flash"), ("openai", "gpt-4o")]
    assert models[("openai", "gpt-4o")]["cost_usd"] == pytest.approx(0.75)
    assert models[("openai", "gpt-x")]["cost_usd"] is None
    assert models[("openai", "gpt-x")]["unpriced_requests"] == 1
    assert set(models[("openai", "gpt-4o")]) == {"provider", "model", *t}

    assert store.stats()["totals"]["requests"] == 7
    # 2025-01-01T01:00:03+01:00 is 00:00:03 UTC: req 3 onwards
    assert store.stats(since="2025-01-01T01:00:03+01:00")["totals"]["requests"] == 4
    empty = store.stats(since="2030-01-01")
    assert empty["totals"]["requests"] == 0 and empty["totals"]["cost_usd"] == 0.0
    assert empty["by_provider"] == [] and empty["totals"]["latency_ms_p50"] is None


async def test_spend_by_day(store: RequestStore) -> None:
    now = datetime.now(timezone.utc)
    day = lambda d: (now - timedelta(days=d)).isoformat()  # noqa: E731
    store.add(rec(1, ts=day(0), cost_usd=1.0, input_tokens=10, output_tokens=1))
    store.add(rec(2, ts=day(0), cost_usd=2.0, input_tokens=20, output_tokens=2))
    store.add(rec(3, ts=day(0), model="mystery", input_tokens=5))
    store.add(rec(4, ts=day(2), provider="anthropic", model="claude", cost_usd=0.5))
    store.add(rec(5, ts=day(40), cost_usd=9.0))  # outside the window
    await store.flush()
    rows = store.spend_by_day(30)
    today, two_ago = day(0)[:10], day(2)[:10]
    assert [(r["day"], r["provider"], r["model"]) for r in rows] == [
        (two_ago, "anthropic", "claude"), (today, "openai", "gpt-4o"), (today, "openai", "mystery"),
    ]
    assert rows[1] == {"day": today, "provider": "openai", "model": "gpt-4o", "requests": 2,
                       "cost_usd": pytest.approx(3.0), "input_tokens": 30, "output_tokens": 3,
                       "unpriced_requests": 0}
    assert rows[2]["cost_usd"] is None and rows[2]["unpriced_requests"] == 1
    assert [r["day"] for r in store.spend_by_day(1)] == [today, today]


def test_wal_mode_and_schema_version(store: RequestStore) -> None:
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
    db.close()


def test_close_is_idempotent_and_drains(tmp_path: Path) -> None:
    s = RequestStore(tmp_path / "r.db")
    s.open()
    for n in range(300):
        s.add(rec(n))
    s.close()
    s.close()
    s.add(rec(999))  # after close: dropped with a warning, not an exception
    s.flush_sync()  # nothing to wait for
    assert len(RequestStore(tmp_path / "r.db").recent(1000)) == 300


def test_misuse_is_an_error(tmp_path: Path) -> None:
    s = RequestStore(tmp_path / "r.db")
    with pytest.raises(RuntimeError):
        s.flush_sync()  # never opened: nothing would ever commit
    s.open()
    with pytest.raises(RuntimeError):
        s.open()
    s.close()


async def test_adds_from_many_threads(store: RequestStore) -> None:
    def burst(t: int) -> None:
        for n in range(100):
            store.add(rec(t * 100 + n))

    threads = [threading.Thread(target=burst, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    await store.flush()
    assert len(store.recent(1000)) == 400


async def test_add_does_not_block_on_a_stalled_writer(store: RequestStore, monkeypatch) -> None:
    release = threading.Event()
    entered = threading.Event()
    real_write = store._write

    def stalled_write(batch):
        entered.set()
        release.wait(5)
        real_write(batch)

    monkeypatch.setattr(store, "_write", stalled_write)
    store.add(rec(1))
    assert entered.wait(5)  # the writer holds the batch and is stuck
    for n in range(2, 50):
        store.add(rec(n))  # returns although the writer cannot make progress
    assert store.recent() == []  # nothing was written synchronously
    release.set()
    await store.flush()
    assert len(store.recent(100)) == 49


async def test_bad_row_is_logged_and_batch_survives(store: RequestStore, caplog) -> None:
    store.add(rec(1))
    store.add(replace(rec(2), ts=None))  # violates NOT NULL
    store.add(rec(3))
    await store.flush()
    assert [r["id"] for r in store.recent()] == ["req-0003", "req-0001"]
    assert "dropping request req-0002" in caplog.text
    store.add(rec(4))  # the writer is still alive
    await store.flush()
    assert len(store.recent()) == 3


def test_reopen_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    s = RequestStore(path)
    s.open()
    s.add(rec(1))
    s.close()
    s2 = RequestStore(path)
    s2.open()  # migrations are not re-run
    s2.add(rec(2))
    s2.close()
    assert len(s2.recent()) == 2


CHILD = """
import sys, time
from pathlib import Path
from sidecar.records import RequestRecord
from sidecar.store import RequestStore
s = RequestStore(Path(sys.argv[1]))
s.open()
for n in range(200):
    s.add(RequestRecord(id=f"r{n:03d}", ts=f"2025-01-01T00:00:{n % 60:02d}Z", inbound="anthropic",
                        requested_model="m", cost_usd=0.01))
s.flush_sync()
print("committed", flush=True)
time.sleep(60)
"""


def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": pythonpath})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "committed"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert Path(f"{path}-wal").exists()  # the rows live in the WAL, never checkpointed by a close()
    survivor = RequestStore(path)
    survivor.open()
    try:
        assert len(survivor.recent(1000)) == 200
        assert survivor.stats()["totals"]["cost_usd"] == pytest.approx(2.0)
    finally:
        survivor.close()
