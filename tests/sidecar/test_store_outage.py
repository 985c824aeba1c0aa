"""The request log under a real write outage: the proxy keeps answering, records wait in memory, none are lost.

Tests run as root here, so chmod cannot make anything unwritable. Two real mechanisms instead:
- SQLite's own limit, ``PRAGMA max_page_count``, set on the writer's connection to the current size: the next
  insert that needs a page fails with a genuine SQLITE_FULL "database or disk is full"; raising it is the disk
  coming back.
- The data dir moved away and a plain file put where it was: nothing can be created or opened there (the
  writer's stat of the db path fails with ENOTDIR, reconnecting fails); moving it back ends the outage.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from conftest import Sidecar
from http_helpers import call
from sidecar import store_backlog
from sidecar.records import RequestRecord
from sidecar.state import STATE
from sidecar.store import RequestStore

CHAT = "/v1/chat/completions"
WAIT = 10.0
PAD = "lorem ipsum " * 700  # ~8 KB: every stored body needs fresh overflow pages


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_backlog, "RETRY_MAX_S", 0.2)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def on_writer(store: RequestStore, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run ``fn(connection)`` on the store's writer thread, between batches (the connection is its alone)."""
    done = threading.Event()
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn(store._conn)  # type: ignore[arg-type]
        finally:
            done.set()

    store._queue.put(run)
    assert done.wait(WAIT)
    return out["value"]


def disk_full(conn: sqlite3.Connection) -> int:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    return conn.execute(f"PRAGMA max_page_count = {pages}").fetchone()[0]


def disk_back(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA max_page_count = 1073741823").fetchone()[0]


def ids_in_db(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        ids = {row[0] for row in db.execute("SELECT id FROM requests")}
    db.close()
    return ids


async def health(http: aiohttp.ClientSession, sc: Sidecar) -> dict[str, Any]:
    reply = await call(http, "GET", sc.url + "/_sidecar/health")
    assert reply.status == 200
    return reply.json["store_health"]


async def until_writable(http: aiohttp.ClientSession, sc: Sidecar) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        while not (state := await health(http, sc))["writable"]:
            await asyncio.sleep(0.05)
    return state


async def send(http: aiohttp.ClientSession, sc: Sidecar, n: int) -> list[str]:
    ids = []
    for i in range(n):
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": f"{i} {PAD}"}]}
        reply = await call(http, "POST", sc.url + CHAT, body=body)
        assert reply.status == 200, reply.body
        ids.append(reply.request_id)
    return ids


def store_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sidecar.store" and r.levelno >= logging.WARNING]


async def test_disk_full_keeps_serving_holds_records_and_loses_none(sidecar: Sidecar, http, caplog) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.store")
    bus = sidecar.app[STATE].bus  # type: ignore[index]
    events = bus.subscribe()
    before = await send(http, sidecar, 2)
    await sidecar.store.flush()
    assert set(before) <= ids_in_db(sidecar.config.db_path)

    on_writer(sidecar.store, disk_full)
    during = await send(http, sidecar, 12)  # every request still answered 200 (asserted in send)
    await sidecar.store.flush()  # returns: the records are parked, not committed
    state = await health(http, sidecar)
    assert state["writable"] is False and state["backlog"] == 12 and state["dropped"] == 0
    assert "database or disk is full" in state["last_error"] and state["since"]
    assert not set(during) & ids_in_db(sidecar.config.db_path)

    # The history does not pretend they do not exist: held records are listed, newest first, with bodies.
    listed = (await call(http, "GET", sidecar.url + "/_sidecar/requests?limit=100")).json["requests"]
    assert [r["id"] for r in listed[:12]] == during[::-1] and {r["id"] for r in listed[12:]} == set(before)
    page = (await call(http, "GET", sidecar.url + f"/_sidecar/requests?limit=5&before={during[5]}")).json
    assert [r["id"] for r in page["requests"]] == [during[4], during[3], during[2], during[1], during[0]]
    detail = (await call(http, "GET", sidecar.url + f"/_sidecar/requests/{during[3]}")).json
    assert detail["status"] == 200 and "3 lorem ipsum" in detail["request_body"]

    on_writer(sidecar.store, disk_back)
    state = await until_writable(http, sidecar)
    assert state["backlog"] == 0 and state["dropped"] == 0 and state["since"] is None
    assert set(before) | set(during) <= ids_in_db(sidecar.config.db_path)  # zero lost
    assert len(store_warnings(caplog)) == 1, store_warnings(caplog)  # one warning per outage, not per record
    assert "not writable" in store_warnings(caplog)[0]
    assert any("writable again" in r.getMessage() for r in caplog.records if r.name == "sidecar.store")

    changes: list[bool] = []
    async with asyncio.timeout(WAIT):  # published from the writer thread through the event loop
        while len(changes) < 2:
            event = await events.get()
            if event.type == "store":
                changes.append(event.data["writable"])
    assert changes == [False, True]


async def test_data_dir_replaced_by_a_file_then_restored(sidecar: Sidecar, http, caplog) -> None:
    data = sidecar.config.data_dir
    before = await send(http, sidecar, 2)
    await sidecar.store.flush()

    away = data.with_name("data-away")
    data.rename(away)
    data.write_bytes(b"not a directory")
    during = await send(http, sidecar, 5)
    await sidecar.store.flush()
    state = await health(http, sidecar)
    assert state["writable"] is False and state["backlog"] == 5, state
    # The file cannot even be read now: the held records are what the history shows.
    listed = (await call(http, "GET", sidecar.url + "/_sidecar/requests?limit=100")).json["requests"]
    assert [r["id"] for r in listed] == during[::-1]

    data.unlink()
    away.rename(data)
    await until_writable(http, sidecar)
    assert set(before) | set(during) <= ids_in_db(sidecar.config.db_path)
    assert len(store_warnings(caplog)) == 1, store_warnings(caplog)


async def test_a_deleted_data_dir_is_recreated_not_written_into_the_void(sidecar: Sidecar, http, caplog) -> None:
    """SQLite keeps writing into an unlinked file without complaint; the writer notices and starts a new one."""
    import shutil

    await send(http, sidecar, 1)
    await sidecar.store.flush()
    shutil.rmtree(sidecar.config.data_dir)
    after = await send(http, sidecar, 3)
    await sidecar.store.flush()
    assert set(after) == ids_in_db(sidecar.config.db_path)
    assert (await health(http, sidecar))["writable"] is True
    assert any("removed or replaced" in m for m in store_warnings(caplog))


def rec(n: int) -> RequestRecord:
    return RequestRecord(id=f"r{n:05d}", ts=f"2025-01-01T00:00:{n % 60:02d}.{n:06d}+00:00",
                         inbound="openai_chat", requested_model="m", status=200)


async def test_backlog_is_bounded_drops_oldest_and_counts(tmp_path: Path, caplog) -> None:
    store = RequestStore(tmp_path / "r.db", backlog=10)
    store.open()
    try:
        store.add(rec(0))
        await store.flush()
        on_writer(store, disk_full)
        for n in range(1, 26):
            store.add(rec(n), request_body=b"x" * 5000)
            await store.flush()
        state = store.health()
        assert state["writable"] is False and state["backlog"] == 10 and state["dropped"] == 15
        assert [r["id"] for r in store.recent(100)] == [f"r{n:05d}" for n in range(25, 15, -1)] + ["r00000"]
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert sum("backlog is full" in m for m in warnings) == 1  # once per outage, not per drop
        on_writer(store, disk_back)
        async with asyncio.timeout(WAIT):
            while not store.health()["writable"]:
                await asyncio.sleep(0.05)
        assert len(ids_in_db(store.path)) == 11
    finally:
        store.close()


def test_close_during_an_outage_reports_what_is_lost(tmp_path: Path, caplog) -> None:
    store = RequestStore(tmp_path / "r.db")
    store.open()
    store.add(rec(0))
    store.flush_sync()
    on_writer(store, disk_full)
    for n in range(1, 4):
        store.add(rec(n), request_body=b"x" * 5000)
    store.flush_sync()
    store.close()  # does not hang on the full disk
    assert any("3 held records are lost" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_body_budget_keeps_records_but_not_their_bodies(tmp_path: Path, monkeypatch) -> None:
    store = RequestStore(tmp_path / "r.db")
    store._backlog.body_budget = 12_000
    store.open()
    try:
        store.add(rec(0))
        await store.flush()
        on_writer(store, disk_full)
        for n in range(1, 5):
            store.add(rec(n), request_body=b"y" * 5000)
        await store.flush()
        state = store.health()
        assert state["backlog"] == 4 and state["bodies_dropped"] == 2 and state["dropped"] == 0
        assert store.get("r00002")["request_body"] == "y" * 5000
        assert store.get("r00004")["request_body"] is None and store.get("r00004")["status"] == 200
    finally:
        store.close()
