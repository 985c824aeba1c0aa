"""The pause switch: control API, the 503 each format gets without any upstream contact, and the CLI.

The CLI runs as a real subprocess against a sidecar served by this test's event loop (so the subprocess is
awaited with asyncio, never a blocking call that would stop the sidecar from answering).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from conftest import Sidecar, Upstreams

ROOT = Path(__file__).resolve().parents[2]
PAUSED = "the sidecar is paused: `sidecar resume` to continue"

CASES = [
    ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
     lambda b: b["error"]["message"]),
    ("/v1/messages", {"model": "anthropic/claude-haiku-4-5", "max_tokens": 5,
                      "messages": [{"role": "user", "content": "hi"}]},
     lambda b: b["type"] == "error" and b["error"]["message"]),
    ("/v1beta/models/gemini-2.5-flash:generateContent", {"contents": [{"parts": [{"text": "hi"}]}]},
     lambda b: b["error"]["status"] == "UNAVAILABLE" and b["error"]["message"]),
    ("/v1/responses", {"model": "openai/gpt-4o-mini", "input": "hi", "stream": True},
     lambda b: b["error"]["message"]),
]


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, body: dict | None = None) -> tuple[int, dict, object]:
    async with http.post(url, data=orjson.dumps(body) if body is not None else b"") as resp:
        return resp.status, orjson.loads(await resp.read()), resp.headers


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def received(ups: Upstreams) -> int:
    return sum(len(u.received) for u in (ups.openai, ups.anthropic, ups.gemini))


async def records(sc: Sidecar, n: int) -> list[dict]:
    async with asyncio.timeout(5):
        while True:
            await sc.store.flush()
            rows = await asyncio.to_thread(sc.store.recent, 50)
            if len(rows) >= n and all(r["latency_ms"] is not None for r in rows):
                return rows
            await asyncio.sleep(0.02)


async def test_pause_refuses_every_format_without_upstream_and_records_it(sidecar, upstreams, http):
    status, body, _ = await post(http, sidecar.url + "/_sidecar/pause")
    assert status == 200 and body == {"paused": True, "changed": True}
    _, health, _ = await post_get(http, sidecar.url + "/_sidecar/health")
    assert health["paused"] is True
    before = received(upstreams)
    for path, request, message_of in CASES:
        status, body, headers = await post(http, sidecar.url + path, request)
        assert status == 503, (path, body)
        assert message_of(body) == PAUSED or PAUSED in str(body)
        assert headers["x-should-retry"] == "false" and headers["x-sidecar-request-id"]
    assert received(upstreams) == before  # no upstream was contacted
    rows = await records(sidecar, len(CASES))
    assert all(r["status"] == 503 and r["error"] == PAUSED and r["attempts"] == [] for r in rows)

    status, body, _ = await post(http, sidecar.url + "/_sidecar/resume")
    assert status == 200 and body == {"paused": False, "changed": True}
    status, body, _ = await post(http, sidecar.url + CASES[0][0], CASES[0][1])
    assert status == 200 and body["choices"][0]["message"]["content"].startswith("Hello")
    _, health, _ = await post_get(http, sidecar.url + "/_sidecar/health")
    assert health["paused"] is False


async def post_get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict, object]:
    async with http.get(url) as resp:
        return resp.status, orjson.loads(await resp.read()), resp.headers


async def test_pause_is_idempotent_and_resume_when_running_is_a_no_op(sidecar, http):
    assert (await post(http, sidecar.url + "/_sidecar/resume"))[1] == {"paused": False, "changed": False}
    await post(http, sidecar.url + "/_sidecar/pause")
    assert (await post(http, sidecar.url + "/_sidecar/pause"))[1] == {"paused": True, "changed": False}


async def test_cli_pause_and_resume_drive_the_running_sidecar(sidecar, upstreams, http):
    port = str(urlsplit(sidecar.url).port)
    code, out, err = await cli("pause", "--port", port)
    assert code == 0, err
    assert "paused" in out
    status, body, _ = await post(http, sidecar.url + CASES[0][0], CASES[0][1])
    assert status == 503 and body["error"]["message"] == PAUSED
    code, out, _ = await cli("--port", port, "pause")
    assert code == 0 and "already" in out
    code, out, err = await cli("resume", "--host", "127.0.0.1", "--port", port)
    assert code == 0 and "resumed" in out, err
    status, _, _ = await post(http, sidecar.url + CASES[0][0], CASES[0][1])
    assert status == 200


async def test_cli_pause_without_a_running_sidecar_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    code, out, err = await cli("pause", "--port", port)
    assert code == 1 and out == ""
    assert f"no sidecar is running at http://127.0.0.1:{port}" in err and "sidecar serve" in err
