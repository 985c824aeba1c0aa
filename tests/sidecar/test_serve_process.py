"""The headline user flow, as separate processes: keys stored with the real CLI in the real Secret Service,
``sidecar serve`` started as a subprocess, the official SDKs calling it, fake providers answering.

Then the durability promise: rows the control API shows are committed, so they survive ``kill -9``; and a
SIGTERM shuts down cleanly (exit 0) with everything flushed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anthropic
import keyring
import openai
import pytest

from sidecar.fake_upstream import FakeUpstream

pytestmark = pytest.mark.secret_service

ROOT = Path(__file__).resolve().parents[2]
K_OPENAI = "test-serve-openai-key-0000111122223333"
K_ANTHROPIC = "sk-ant-serve-key-4444555566667777"
PLACEHOLDER = "placeholder-not-a-key"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, stdin: str | None = None, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sidecar", *args], cwd=ROOT, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30, env=env)


@dataclass
class World:
    tmp: Path
    env: dict[str, str]
    config: Path
    openai: FakeUpstream
    anthropic: FakeUpstream

    @property
    def db(self) -> Path:
        return self.tmp / "data" / "llm-sidecar" / "requests.db"


@pytest.fixture
async def world(tmp_path: Path, secret_service: None) -> AsyncIterator[World]:
    fake_openai = FakeUpstream("openai", expect_key=K_OPENAI)
    fake_anthropic = FakeUpstream("anthropic", expect_key=K_ANTHROPIC)
    await fake_openai.start()
    await fake_anthropic.start()
    try:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[providers.openai]\nbase_url = "{fake_openai.base_url}"\n\n'
            f'[providers.anthropic]\nbase_url = "{fake_anthropic.base_url}"\n',
            encoding="utf-8",
        )
        env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
        env.pop("PYTHON_KEYRING_BACKEND", None)
        yield World(tmp_path, env, config, fake_openai, fake_anthropic)
    finally:
        await fake_openai.close()
        await fake_anthropic.close()


class Server:
    """``sidecar serve`` in a subprocess, output to files (a full pipe can never block it)."""

    def __init__(self, world: World, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = world.tmp / f"{name}.out"
        self.err = world.tmp / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar", "serve", "--config", str(world.config), "--port", str(self.port)],
                cwd=ROOT, env=world.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    async def wait_healthy(self) -> dict:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while loop.time() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"sidecar serve exited with {self.proc.returncode}:\n{self.output()}")
                try:
                    async with http.get(f"{self.url}/_sidecar/health") as resp:
                        if resp.status == 200:
                            return await resp.json()
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        pytest.fail(f"sidecar serve not healthy within {START_TIMEOUT}s:\n{self.output()}")

    async def requests_when(self, done, what: str) -> list[dict]:
        """Poll the control API until `done(rows)`; bounded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        rows: list[dict] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while loop.time() < deadline:
                async with http.get(f"{self.url}/_sidecar/requests?limit=100") as resp:
                    assert resp.status == 200
                    rows = (await resp.json())["requests"]
                if done(rows):
                    return rows
                await asyncio.sleep(0.05)
        pytest.fail(f"control API never showed {what}; last saw {rows}")

    async def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.proc.poll() is None:
            if loop.time() > deadline:
                pytest.fail(f"sidecar serve did not exit within {timeout}s:\n{self.output()}")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)


async def store_keys(world: World) -> None:
    for provider, key in (("openai", K_OPENAI), ("anthropic", K_ANTHROPIC)):
        proc = await asyncio.to_thread(cli, "keys", "set", provider, stdin=key + "\n", env=world.env)
        assert proc.returncode == 0, proc.stderr
    assert keyring.get_password("llm-sidecar", "openai") == K_OPENAI
    assert keyring.get_password("llm-sidecar", "anthropic") == K_ANTHROPIC


async def sdk_traffic(url: str) -> None:
    """Two calls per SDK: one plain, one streamed."""
    oa = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=PLACEHOLDER, max_retries=0, timeout=20)
    an = anthropic.AsyncAnthropic(base_url=url, api_key=PLACEHOLDER, max_retries=0, timeout=20)
    try:
        resp = await oa.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hello from the sdk"}])
        assert "you said hello from the sdk" in resp.choices[0].message.content
        stream = await oa.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "stream please"}], stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert "you said stream please" in text

        msg = await an.messages.create(
            model="anthropic/claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi claude"}])
        assert "you said hi claude" in msg.content[0].text
        async with an.messages.stream(
            model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "stream claude"}]
        ) as stream:
            text = "".join([t async for t in stream.text_stream])
        assert "you said stream claude" in text
    finally:
        await oa.close()
        await an.close()


def complete(rows: list[dict], n: int) -> bool:
    return len(rows) >= n and all(r["status"] == 200 and r["output_tokens"] and r["latency_ms"] for r in rows)


def db_rows(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY ts")]
    finally:
        conn.close()


async def test_serve_subprocess_headline_flow(world: World):
    await store_keys(world)
    server = Server(world, "serve1")
    try:
        health = await server.wait_healthy()
        assert health["status"] == "ok" and health["listen"] == server.url
        has_key = {p["id"]: p["has_key"] for p in health["providers"]}
        assert has_key["openai"] is True and has_key["anthropic"] is True and has_key["gemini"] is False
        assert has_key["ollama"] is None  # needs no key
        assert health["store"] == str(world.db)

        await sdk_traffic(server.url)

        # The fakes got the keyring's keys, never the SDKs' placeholder.
        assert len(world.openai.received) == 2 and len(world.anthropic.received) == 2
        for got in world.openai.received:
            assert got.headers["authorization"] == f"Bearer {K_OPENAI}"
            assert got.json["model"] == "gpt-4o-mini"
        for got in world.anthropic.received:
            assert got.headers["x-api-key"] == K_ANTHROPIC and "authorization" not in got.headers
            assert got.json["model"] == "claude-haiku-4-5"
        for got in world.openai.received + world.anthropic.received:
            assert PLACEHOLDER not in str(got.headers) and PLACEHOLDER.encode() not in got.body

        # sidecar doctor, a separate process, finds everything in order and the proxy running.
        doctor = await asyncio.to_thread(cli, "doctor", "--port", str(server.port), env=world.env)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert f"[ok  ] proxy: running at {server.url}" in doctor.stdout
        assert "provider keys: anthropic, openai" in doctor.stdout
        assert "FAIL" not in doctor.stdout
        assert K_OPENAI not in doctor.stdout and K_ANTHROPIC not in doctor.stdout

        # Wait until the control API shows all four finished rows: then they are committed to SQLite.
        api_rows = await server.requests_when(lambda rows: complete(rows, 4), "4 finished requests")
        assert len(api_rows) == 4

        rows = db_rows(world.db)
        assert len(rows) == 4
        assert sorted((r["provider"], r["model"], r["stream"]) for r in rows) == [
            ("anthropic", "claude-haiku-4-5", 0), ("anthropic", "claude-haiku-4-5", 1),
            ("openai", "gpt-4o-mini", 0), ("openai", "gpt-4o-mini", 1),
        ]
        assert {r["requested_model"] for r in rows} == {"openai/gpt-4o-mini", "anthropic/claude-haiku-4-5",
                                                        "claude-haiku-4-5"}
        for r in rows:
            assert r["status"] == 200 and r["error"] is None
            assert r["input_tokens"] > 0 and r["output_tokens"] > 0
            assert r["cost_usd"] is not None and r["cost_usd"] > 0
            assert r["latency_ms"] is not None and r["latency_ms"] > 0
            if r["stream"]:
                assert r["ttft_ms"] is not None and r["ttft_ms"] <= r["latency_ms"]
        assert {r["id"] for r in rows} == {r["id"] for r in api_rows}

        # kill -9: no cleanup runs, yet every committed row is still there.
        server.proc.send_signal(signal.SIGKILL)
        assert await server.wait_exit() == -signal.SIGKILL
        after = db_rows(world.db)
        assert [r["id"] for r in after] == [r["id"] for r in rows]
        assert after == rows

        # Keys went to the keyring only: not into the database, the WAL, or the server's output.
        for path in world.db.parent.iterdir():
            blob = path.read_bytes()
            assert K_OPENAI.encode() not in blob and K_ANTHROPIC.encode() not in blob, path
        assert K_OPENAI not in server.output() and K_ANTHROPIC not in server.output()
    finally:
        server.kill()


async def test_serve_subprocess_sigterm_exits_cleanly(world: World):
    await store_keys(world)
    server = Server(world, "serve2")
    try:
        await server.wait_healthy()
        oa = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=PLACEHOLDER, max_retries=0, timeout=20)
        try:
            await oa.chat.completions.create(model="openai/gpt-4o-mini",
                                             messages=[{"role": "user", "content": "before the signal"}])
        finally:
            await oa.close()
        server.proc.send_signal(signal.SIGTERM)
        assert await server.wait_exit() == 0, server.output()
        assert "Traceback" not in server.output()
        # shutdown flushed the store: the request is on disk even if nothing polled for it
        rows = db_rows(world.db)
        assert len(rows) == 1 and rows[0]["status"] == 200 and rows[0]["output_tokens"] > 0
        # and the port is free again
        with socket.socket() as s:
            s.bind(("127.0.0.1", server.port))
    finally:
        server.kill()


async def test_serve_startup_banner_and_port_in_use(world: World):
    server = Server(world, "serve3")
    try:
        await server.wait_healthy()
        assert f"listening on {server.url}" in server.output()
        assert str(world.config) in server.output() and str(world.db) in server.output()
        # a second sidecar on the same port says so and exits 1, without a traceback
        second = await asyncio.to_thread(
            cli, "serve", "--config", str(world.config), "--port", str(server.port), env=world.env)
        assert second.returncode == 1
        assert "cannot listen" in second.stderr and str(server.port) in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        server.kill()
