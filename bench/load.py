"""Load generator for the benchmarks: one pooled aiohttp session (on uvloop when installed), a fixed number of
requests at a fixed concurrency, JSON results (latencies, time to first byte of the stream, throughput).

One shot:

    python bench/load.py --url http://127.0.0.1:8787/v1/chat/completions --format openai \\
        --model gpt-4o-mini --concurrency 16 --requests 2000 [--stream] [--raw]

Or as a worker (what ``bench/run.py`` does, so the session and its connections live across scenarios):
``python bench/load.py --serve`` reads one JSON job per line on stdin and writes one JSON result per line
on stdout. A job: ``{"url", "body" (str), "headers", "concurrency", "requests", "warmup", "raw"}``.

Latencies are milliseconds from sending the request to the end of the body; ``ttft`` is from sending to
the first body bytes of a streamed answer. ``raw`` includes every latency so runs can be pooled.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import aiohttp
import orjson


def request_body(fmt: str, model: str, stream: bool) -> bytes:
    messages = [{"role": "user", "content": "Say hello in one short sentence, please."}]
    if fmt == "anthropic":
        return orjson.dumps({"model": model, "max_tokens": 64, "messages": messages, "stream": stream})
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def headers_for(fmt: str) -> dict[str, str]:
    if fmt == "anthropic":
        return {"x-api-key": "bench", "anthropic-version": "2023-06-01", "content-type": "application/json"}
    return {"authorization": "Bearer bench", "content-type": "application/json"}


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def summary(values: list[float]) -> dict[str, float | None]:
    return {"n": len(values), "p50": pct(values, 50), "p90": pct(values, 90), "p99": pct(values, 99),
            "max": max(values) if values else None,
            "mean": sum(values) / len(values) if values else None}


async def run_job(session: aiohttp.ClientSession, job: dict[str, Any]) -> dict[str, Any]:
    url: str = job["url"]
    body: bytes = job["body"].encode() if isinstance(job["body"], str) else job["body"]
    headers: dict[str, str] = job.get("headers") or {}
    concurrency = int(job.get("concurrency", 1))
    total = int(job.get("requests", 100))
    warmup = int(job.get("warmup", 0))
    stream = b'"stream":true' in body

    latencies: list[float] = []
    ttfts: list[float] = []
    errors: list[str] = []
    events = 0
    nbytes = 0

    async def one(record: bool) -> None:
        nonlocal events, nbytes
        t0 = time.perf_counter()
        first: float | None = None
        data = b""
        status = 0
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                if stream:
                    async for data in resp.content.iter_any():
                        if first is None:
                            first = time.perf_counter()
                        if record:
                            events += data.count(b"data:")
                            nbytes += len(data)
                else:
                    data = await resp.read()
                    if record:
                        nbytes += len(data)
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if record:
                errors.append(f"{type(exc).__name__}: {exc}")
            return
        t1 = time.perf_counter()
        if not record:
            return
        if status != 200:
            errors.append(f"HTTP {status}: {data[:300]!r}")
            return
        latencies.append((t1 - t0) * 1000)
        if first is not None:
            ttfts.append((first - t0) * 1000)

    async def worker(queue: list[bool]) -> None:
        while queue:
            await one(queue.pop())

    if warmup:
        wq = [False] * warmup
        await asyncio.gather(*(worker(wq) for _ in range(min(concurrency, warmup))))
    queue = [True] * total
    t_start = time.perf_counter()
    await asyncio.gather(*(worker(queue) for _ in range(concurrency)))
    elapsed = time.perf_counter() - t_start
    result: dict[str, Any] = {
        "url": url, "concurrency": concurrency, "requests": total, "ok": len(latencies),
        "errors": len(errors), "first_errors": errors[:3], "elapsed_s": elapsed,
        "rps": len(latencies) / elapsed if elapsed > 0 else None,
        "latency_ms": summary(latencies), "ttft_ms": summary(ttfts) if stream else None,
        "events": events, "bytes": nbytes,
    }
    if job.get("raw"):
        result["latencies"] = latencies
        result["ttfts"] = ttfts
    return result


def make_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=512, limit_per_host=256, force_close=False),
        timeout=aiohttp.ClientTimeout(total=120, sock_connect=10),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


async def serve_jobs() -> None:
    """Worker mode: JSON jobs on stdin, JSON results on stdout, one per line."""
    loop = asyncio.get_running_loop()
    async with make_session() as session:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            if not line.strip():
                continue
            result = await run_job(session, orjson.loads(line))
            sys.stdout.write(orjson.dumps(result).decode() + "\n")
            sys.stdout.flush()


async def one_shot(args: argparse.Namespace) -> None:
    job = {"url": args.url, "body": request_body(args.format, args.model, args.stream),
           "headers": headers_for(args.format), "concurrency": args.concurrency, "requests": args.requests,
           "warmup": args.warmup, "raw": args.raw}
    async with make_session() as session:
        result = await run_job(session, job)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


def _run(coro: Any) -> None:
    """On uvloop when installed, like the fake provider: the load generator shares the cores with the proxy under
    test, and the less CPU it needs per chunk, the less it slows the proxy down (direct and proxied rounds alike)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", action="store_true", help="worker mode: JSON jobs on stdin, results on stdout")
    ap.add_argument("--url")
    ap.add_argument("--format", choices=("openai", "anthropic"), default="openai")
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--raw", action="store_true", help="include every latency in the output")
    args = ap.parse_args(argv)
    if args.serve:
        _run(serve_jobs())
        return 0
    if not args.url:
        ap.error("--url is required (or --serve)")
    _run(one_shot(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
