"""Logging pass-throughs around the sidecar, so run_agents.sh can report what each agent SENT and what the
sidecar then sent to each provider.

The sidecar records bodies but not request headers or query strings (``?beta=true``, ``anthropic-beta``,
``x-stainless-*``, ``originator`` ...), and it records only generation requests, not model listings,
``count_tokens`` probes or HEAD checks. This tap sees every request an agent makes: it appends one JSON
line per request (method, path, query, headers with credentials masked, body size, the status the sidecar
answered, and the first bytes of any error body) to ``--log``, and forwards the request to ``--target``
unchanged, streaming the answer back chunk by chunk.

It also acts as the agents' HTTP(S) proxy (HTTPS_PROXY / HTTP_PROXY point at it): a CONNECT or an
absolute-form request to any host other than the target is logged as ``"blocked": true`` and refused
with 403, so no agent traffic leaves 127.0.0.1 and the report lists every outside host an agent tried.

One process serves several taps, each on its own loopback port: ``--tap NAME=TARGET`` (repeatable) prints
``tap NAME at URL`` once listening. ``--bodies NAME`` (repeatable) also logs that tap's request bodies (used for
the sidecar → fake-provider taps; what agents send is in the sidecar's own store). All lines go to one log,
tagged with the tap's name, in the order requests finish.

Usage: python tests/agents/tap.py --log FILE --tap agent=http://127.0.0.1:P [--tap openai=... --bodies openai]
Not a test module; run_agents.sh starts and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
from aiohttp import web

SECRET_HEADERS = {"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization", "cookie"}
HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
       "accept-encoding", "te", "upgrade", "proxy-authorization"}
ERROR_SNIPPET = 4000


def mask(name: str, value: str) -> str:
    if name.lower() in SECRET_HEADERS:
        return f"<masked {len(value)} chars>"
    return value


class Log:
    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1, encoding="utf-8")
        self.n = 0

    def write(self, entry: dict) -> None:
        self.file.write(json.dumps(entry) + "\n")


class Tap:
    def __init__(self, name: str, target: str, log: Log, session: aiohttp.ClientSession, *, bodies: bool) -> None:
        self.name = name
        self.target = target.rstrip("/")
        self.target_hostport = self.target.split("://", 1)[1]
        self.log = log
        self.session = session
        self.bodies = bodies

    def write(self, entry: dict) -> None:
        self.log.write(entry)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.log.n += 1
        entry: dict = {"tap": self.name, "n": self.log.n, "t": round(time.time(), 3), "method": request.method,
                       "path": request.path, "query": dict(request.query),
                       "headers": {k: mask(k, v) for k, v in request.headers.items()}}
        raw_target = request.raw_path
        # Proxy use: CONNECT host:port, or an absolute-form URL for a host that is not the sidecar.
        if request.method == "CONNECT" or (raw_target.startswith("http") and self.target_hostport not in raw_target):
            entry.update(blocked=True, host=request.host or raw_target, status=403)
            self.write(entry)
            return web.Response(status=403, text="blocked by tests/agents/tap.py: loopback only\n")
        body = await request.read()
        entry["body_bytes"] = len(body)
        if self.bodies and body:
            entry["body"] = body.decode("utf-8", "replace")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        url = self.target + request.rel_url.path_qs if not raw_target.startswith("http") else \
            self.target + str(request.rel_url.relative())
        t0 = time.perf_counter()
        try:
            upstream = await self.session.request(request.method, url, data=body or None, headers=headers,
                                                  allow_redirects=False)
        except (aiohttp.ClientError, OSError) as exc:
            entry.update(status=502, error=f"tap could not reach the sidecar: {exc}")
            self.write(entry)
            return web.Response(status=502, text=entry["error"])
        entry["status"] = upstream.status
        for h in ("x-sidecar-request-id", "x-sidecar-served-by", "x-sidecar-warning", "content-type"):
            if h in upstream.headers:
                entry[h] = upstream.headers[h]
        out_headers = {k: v for k, v in upstream.headers.items()
                       if k.lower() not in HOP and k.lower() not in ("content-encoding", "date", "server")}
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out_headers)
        await resp.prepare(request)
        first = b""
        try:
            async for chunk in upstream.content.iter_any():
                if len(first) < ERROR_SNIPPET:
                    first += chunk[: ERROR_SNIPPET - len(first)]
                await resp.write(chunk)
            await resp.write_eof()
        except (ConnectionResetError, aiohttp.ClientError) as exc:
            entry["stream_error"] = str(exc) or type(exc).__name__
        finally:
            upstream.release()
            entry["ms"] = round((time.perf_counter() - t0) * 1000, 1)
            is_error_event = b"event: error" in first or b'"type":"error"' in first or b'"type": "error"' in first
            if upstream.status >= 400 or is_error_event:
                entry["response_head"] = first.decode("utf-8", "replace")
            self.write(entry)
        return resp


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--tap", action="append", required=True, metavar="NAME=TARGET")
    p.add_argument("--bodies", action="append", default=[], metavar="NAME")
    args = p.parse_args()
    log = Log(args.log)
    session = aiohttp.ClientSession(auto_decompress=True, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
    runners = []
    try:
        for spec in args.tap:
            name, _, target = spec.partition("=")
            tap = Tap(name, target, log, session, bodies=name in args.bodies)
            runner = web.ServerRunner(web.Server(tap.handle), handler_cancellation=True)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            runners.append(runner)
            print(f"tap {name} at http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()
    finally:
        await session.close()
        for runner in runners:
            await runner.cleanup()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
