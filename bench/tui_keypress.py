"""Key press → screen latency of the TUI with a big history and live traffic arriving.

    .venv/bin/python bench/tui_keypress.py [--records 100000] [--rate 50] [--rounds 20]

Fills a request store with `--records` rows, starts a real sidecar on it in front of fake providers,
sends `--rate` requests a second through it, and runs the TUI headless (Textual's `run_test`) in the
same process and event loop, exactly as `sidecar up` shares one loop between proxy and UI. Then it
presses the keys people use most — cursor moves, page moves, sort, filter, detail, spend, providers,
back — and times each from the key event being posted to the first frame Textual composes after the
app has visibly handled it (cursor moved, screen shown, filter applied). Also prints the event loop's
lag, since proxy, traffic and UI share one loop. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import orjson
from textual import events
from textual.pilot import Pilot
from textual.screen import Screen

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sidecar.app import build_app  # noqa: E402
from sidecar.config import config_from_dict  # noqa: E402
from sidecar.fake_upstream import FakeUpstream  # noqa: E402
from sidecar.keys import MemoryKeyStore  # noqa: E402
from sidecar.records import Attempt, RequestRecord  # noqa: E402
from sidecar.server import start_server  # noqa: E402
from sidecar.store import RequestStore  # noqa: E402
from tui.app import SidecarApp  # noqa: E402
from tui.screens.detail import DetailScreen  # noqa: E402
from tui.screens.providers import ProvidersScreen  # noqa: E402
from tui.screens.spend import SpendScreen  # noqa: E402
from tui.screens.traffic import TrafficScreen  # noqa: E402

KEYS = {"openai": "bench-openai", "anthropic": "bench-anthropic"}
MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"), ("anthropic", "claude-haiku-4-5"),
          ("anthropic", "claude-sonnet-4-5")]
SETTLE_S = 0.15
"""Pause after each action, as a person's next key comes later; lets fetches and refreshes finish."""


def _traffic_screen(app: SidecarApp) -> TrafficScreen:
    return app.screen_stack[0] if isinstance(app.screen_stack[0], TrafficScreen) else app.screen  # type: ignore[return-value]


def actions(app: SidecarApp) -> list[tuple[str, list[str], Callable[[], Callable[[], bool]], list[str]]]:
    """(label, keys, make_done, undo): `make_done()` is called just before the last key is posted and
    returns the predicate that is true once the app has handled it (cursor moved, screen shown, ...)."""

    def table():  # noqa: ANN202
        return _traffic_screen(app).table

    def cursor_moves() -> Callable[[], bool]:
        before = table().cursor_row
        return lambda: table().cursor_row != before

    def sort_changes() -> Callable[[], bool]:
        before = table().sort_column
        return lambda: table().sort_column != before

    def filter_applied() -> Callable[[], bool]:
        return lambda: _traffic_screen(app).filter_text == "~p openai" and not _traffic_screen(app)._stale

    def shows(kind: type) -> Callable[[], Callable[[], bool]]:
        return lambda: (lambda: isinstance(app.screen, kind) and app.screen.is_mounted)

    def follow_toggles() -> Callable[[], bool]:
        before = _traffic_screen(app).follow
        return lambda: _traffic_screen(app).follow != before

    return [
        ("j (down)", ["j"], cursor_moves, []),
        ("k (up)", ["k"], cursor_moves, []),
        ("pagedown", ["pagedown"], cursor_moves, ["home"]),
        ("o (sort)", ["o"], sort_changes, []),
        ("/ filter: enter applies it", ["slash", *"~p openai", "enter"], filter_applied, ["escape"]),
        ("enter (detail)", ["enter"], shows(DetailScreen), ["escape"]),
        ("s (spend)", ["s"], shows(SpendScreen), ["escape"]),
        ("p (providers)", ["p"], shows(ProvidersScreen), ["escape"]),
        ("F (follow)", ["F"], follow_toggles, []),
    ]


NAMED_CHARS = {"enter": "\r", "slash": "/", "escape": "\x1b", "space": " "}


def post_key(app: SidecarApp, key: str) -> None:
    """Hand one key to the app as the terminal driver would, without the pilot's wait-for-idle (which,
    with live traffic always arriving, measures the traffic rather than the key)."""
    event = events.Key(key, key if len(key) == 1 else NAMED_CHARS.get(key))
    event.set_sender(app)
    assert app._driver is not None
    app._driver.send_message(event)


async def time_key(app: SidecarApp, pilot: Pilot[int], keys: list[str], make_done: Callable[[], Callable[[], bool]],
                   frames: list[float]) -> float:
    """Milliseconds from posting the last key to the first frame composed after the app handled it."""
    if keys[:-1]:
        await pilot.press(*keys[:-1])
    done = make_done()
    started = time.perf_counter()
    post_key(app, keys[-1])
    while not done():
        if time.perf_counter() - started > 10:
            raise TimeoutError(f"key {keys[-1]!r} had no effect within 10 s")
        await asyncio.sleep(0.001)
    handled = time.perf_counter()
    while not frames or frames[-1] < handled:
        if time.perf_counter() - handled > 1.0:
            break  # nothing to repaint: the handled time is the answer
        await asyncio.sleep(0.001)
    return ((frames[-1] if frames and frames[-1] >= handled else handled) - started) * 1000


def fill(store: RequestStore, count: int) -> None:
    """`count` finished records spread over the last 30 days, newest last, as a busy month looks."""
    start = datetime.now(timezone.utc) - timedelta(days=30)
    step = timedelta(days=30) / max(count, 1)
    for i in range(count):
        provider, model = MODELS[i % len(MODELS)]
        error = i % 37 == 0
        status = 503 if error else 200
        store.add(RequestRecord(
            id=uuid.uuid4().hex, ts=(start + step * i).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            inbound="openai_chat", requested_model=f"{provider}/{model}", provider=provider, model=model,
            stream=i % 2 == 0, status=status, latency_ms=300 + i % 900, ttft_ms=120 + i % 300,
            input_tokens=500 + i % 2000, output_tokens=80 + i % 400, cost_usd=0.0001 * (1 + i % 50),
            usage_source="reported", error="upstream 503" if error else None, client="bench",
            path="/v1/chat/completions",
            attempts=[Attempt(provider, model, status, "upstream 503" if error else None, 290.0)],
        ))


async def loop_lag(out: list[float]) -> None:
    while True:
        started = time.perf_counter()
        await asyncio.sleep(0.01)
        out.append((time.perf_counter() - started - 0.01) * 1000)


async def traffic(url: str, rate: float, stop: asyncio.Event) -> int:
    sent = 0
    body = orjson.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer x", "Content-Type": "application/json"}) as http:
        async def one() -> None:
            async with http.post(url + "/v1/chat/completions", data=body) as resp:
                await resp.read()

        tasks: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks, return_exceptions=True)
    return sent


async def run(records: int, rate: float, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sidecar-tui-bench-"))
    fakes = {p: FakeUpstream(p, expect_key=KEYS[p]) for p in KEYS}
    for fake in fakes.values():
        await fake.start()
    raw = {"providers": {p: {"base_url": f.base_url} for p, f in fakes.items()}}
    config = replace(config_from_dict(raw), data_dir=tmp)
    filler = RequestStore(config.db_path, body_cap=config.body_cap_bytes)
    filler.open()
    t0 = time.perf_counter()
    await asyncio.to_thread(fill, filler, records)
    await filler.flush()
    filler.close()
    store = RequestStore(config.db_path, body_cap=config.body_cap_bytes)  # the app opens and closes this one
    print(f"store: {records:,} records written in {time.perf_counter() - t0:.1f} s ({config.db_path})")
    app = build_app(config, keys=MemoryKeyStore(KEYS), store=store)
    runner, url = await start_server(app, "127.0.0.1", 0)
    stop = asyncio.Event()
    gen = asyncio.create_task(traffic(url, rate, stop))
    timings: dict[str, list[float]] = {}
    lag: list[float] = []
    try:
        tui = SidecarApp(url)
        frames: list[float] = []
        compose_frame = tui._display

        def display(screen: Screen[object], renderable: object) -> None:
            if renderable is not None:
                frames.append(time.perf_counter())
            compose_frame(screen, renderable)

        tui._display = display  # type: ignore[method-assign]  # timestamps each composed frame
        probe = asyncio.create_task(loop_lag(lag))
        async with tui.run_test(size=(120, 40)) as pilot:
            await asyncio.sleep(2.0)  # history loaded, live rows arriving
            for _ in range(rounds):
                for label, keys, make_done, undo in actions(tui):
                    ms = await time_key(tui, pilot, keys, make_done, frames)
                    timings.setdefault(label, []).append(ms)
                    await asyncio.sleep(SETTLE_S)
                    if undo:
                        await pilot.press(*undo)
                        await asyncio.sleep(SETTLE_S)
            shown = tui.screen.query_one("#traffic").row_count if tui.screen.query("#traffic") else 0
    finally:
        probe.cancel()
        stop.set()
        sent = await gen
        await runner.cleanup()
        for fake in fakes.values():
            await fake.close()
    print(f"live traffic: {sent} requests at {rate:g}/s during the run; table rows in the widget: {shown}")
    lag.sort()
    print(f"event-loop lag (10 ms timer, one loop shared by proxy, traffic and UI): "
          f"p50 {statistics.median(lag):.1f} ms, p99 {lag[int(len(lag) * 0.99)]:.1f} ms")
    print(f"{'key':<28} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
    for label, values in timings.items():
        values.sort()
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        print(f"{label:<28} {statistics.median(values):>7.1f} {p95:>7.1f} {values[-1]:>7.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=50.0, help="live requests per second during the run")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    asyncio.run(run(args.records, args.rate, args.rounds))


if __name__ == "__main__":
    main()
