"""Failover drill: kill a provider in the middle of traffic and count what clients see.

    .venv/bin/python tests/drills/kill_provider.py [--requests 400] [--concurrency 16]

Starts two simulated OpenAI-compatible providers and a real sidecar on 127.0.0.1, with an alias whose first
target is provider A. Clients send a mix of streamed and non-streamed requests through the alias; a third of
the way in, provider A is shut down (it stops accepting connections; pooled connections to it die). The
drill prints how many requests each provider served, how many failed over, the breaker state afterwards, and
— the point — how many errors clients saw (expected: 0). Not part of the test suite: it is a run to watch.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sidecar.app import build_app  # noqa: E402
from sidecar.config import config_from_dict  # noqa: E402
from sidecar.fake_upstream import FakeUpstream  # noqa: E402
from sidecar.keys import MemoryKeyStore  # noqa: E402
from sidecar.server import start_server  # noqa: E402
from sidecar.state import STATE  # noqa: E402
from sidecar.store import RequestStore  # noqa: E402


async def drill(total: int, concurrency: int) -> int:
    a = FakeUpstream("openai", name="provider-a", expect_key="key-a", chunk_delay=0.002)
    b = FakeUpstream("openai", name="provider-b", expect_key="key-b", chunk_delay=0.002)
    await a.start()
    await b.start()
    config = config_from_dict({
        "providers": {"a": {"adapter": "openai", "base_url": a.base_url},
                      "b": {"adapter": "openai", "base_url": b.base_url}},
        "models": {"resilient": {"targets": ["a/gpt-4o-mini", "b/gpt-4o-mini"]}},
        "timeouts": {"connect": 2, "first_byte": 10, "idle": 10},
    })
    config = replace(config, data_dir=Path(tempfile.mkdtemp(prefix="sidecar-drill-")))
    store = RequestStore(config.db_path)
    app = build_app(config, keys=MemoryKeyStore({"a": "key-a", "b": "key-b"}), store=store)
    runner, url = await start_server(app, "127.0.0.1", 0)
    outcomes: collections.Counter[str] = collections.Counter()
    served: collections.Counter[str] = collections.Counter()
    killed_at = total // 3
    sent = 0
    sem = asyncio.Semaphore(concurrency)
    a_alive = True

    async def one(i: int, http: aiohttp.ClientSession) -> None:
        nonlocal a_alive
        stream = i % 2 == 0
        body = {"model": "resilient", "stream": stream, "messages": [{"role": "user", "content": f"request {i}"}]}
        async with sem:
            if i == killed_at and a_alive:
                a_alive = False
                print(f"-- request {i}: shutting provider A down --", flush=True)
                await a.close()
            try:
                async with http.post(f"{url}/v1/chat/completions", data=orjson.dumps(body),
                                     headers={"content-type": "application/json"}) as resp:
                    raw = await resp.read()
                    ok = resp.status == 200 and b'"error"' not in raw and (not stream or b"[DONE]" in raw)
                    outcomes["ok" if ok else f"error {resp.status}"] += 1
                    served[resp.headers.get("x-sidecar-served-by", "-")] += 1
            except aiohttp.ClientError as exc:
                outcomes[f"client exception {type(exc).__name__}"] += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one(i, http) for i in range(total)))
    elapsed = time.perf_counter() - started
    await store.flush()
    records = store.recent(total)
    failed_over = sum(1 for r in records if len(r["attempts"]) > 1)
    health = app[STATE].proxy.health.snapshot()  # type: ignore[union-attr]
    print(f"{total} requests ({concurrency} in flight) in {elapsed:.2f}s; provider A killed at request {killed_at}")
    print("client outcomes:", dict(outcomes))
    print("served by:", dict(served))
    print(f"requests that failed over: {failed_over}")
    for h in health:
        print(f"  {h['provider']}: breaker={h['breaker']} error_rate={h['error_rate']} "
              f"consecutive_failures={h['consecutive_failures']}")
    await runner.cleanup()
    await b.close()
    errors = sum(n for k, n in outcomes.items() if k != "ok")
    print("RESULT:", "no client saw an error" if errors == 0 else f"{errors} client errors")
    return 0 if errors == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    return asyncio.run(drill(args.requests, args.concurrency))


if __name__ == "__main__":
    raise SystemExit(main())
