"""The floor: the least a Python reverse proxy on this stack can add. Not part of the sidecar.

A bare aiohttp relay on uvloop with one pooled upstream session, like the sidecar's: every POST is forwarded
to the same path on the upstream with its body and content type, and the answer comes back as it arrives
(streams chunk by chunk). No keys, routing, translation, metering, recording, events or access checks. The
benchmark measures it beside the sidecar so each figure has its floor next to it: what the sidecar adds
beyond it is the cost of its real work.

    python bench/floor_proxy.py --port 9200 --upstream http://127.0.0.1:9100
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp
from aiohttp import web

try:
    import uvloop
except ImportError:  # pragma: no cover - the sidecar runs on plain asyncio there too
    uvloop = None


async def serve(port: int, upstream: str) -> None:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512, limit_per_host=0),
                                    timeout=aiohttp.ClientTimeout(total=None), read_bufsize=256 * 1024)

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json"),
                   "Authorization": "Bearer floor"}
        async with session.post(upstream + request.path, data=body, headers=headers) as resp:
            if resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                out = web.StreamResponse(status=resp.status, headers={"Content-Type": "text/event-stream"})
                await out.prepare(request)
                async for chunk in resp.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
                return out
            return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/{tail:.*}", relay)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await session.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="the fake provider's base URL")
    args = ap.parse_args(argv)
    run = uvloop.run if uvloop is not None else asyncio.run
    try:
        run(serve(args.port, args.upstream))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
