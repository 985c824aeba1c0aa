"""Access control over real HTTP: Host / Origin checks (DNS rebinding, cross-origin pages), CORS for allowed
origins, real CLIs' browser-looking headers, and client tokens in every API format and the control API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from conftest import KEYS, Sidecar, Upstreams, config_for, start_sidecar
from sidecar.keys import MemoryKeyStore
from sidecar.tokens import RECHECK_SECONDS, TokenStore

WAIT = 5.0
CHAT = ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
RESPONSES = ("/v1/responses", {"model": "openai/gpt-4o-mini", "input": "hi"})
MESSAGES = ("/v1/messages", {"model": "anthropic/claude-haiku-4-5", "max_tokens": 20,
                             "messages": [{"role": "user", "content": "hi"}]})
GEMINI = ("/v1beta/models/gemini-2.5-flash:generateContent", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
ENDPOINTS = {"openai_chat": CHAT, "openai_responses": RESPONSES, "anthropic": MESSAGES, "gemini": GEMINI}
AUTH_HEADER = {"openai_chat": "authorization", "openai_responses": "authorization", "anthropic": "x-api-key",
               "gemini": "x-goog-api-key"}


def auth(fmt: str, token: str) -> dict[str, str]:
    header = AUTH_HEADER[fmt]
    return {header: f"Bearer {token}" if header == "authorization" else token}


def assert_error_format(fmt: str, status: int, data: Any) -> str:
    if fmt == "anthropic":
        assert data["type"] == "error" and data["error"]["type"]
        return data["error"]["message"]
    if fmt == "gemini":
        assert data["error"]["code"] == status and data["error"]["status"].isupper()
        return data["error"]["message"]
    assert set(data["error"]) >= {"message", "type"}
    return data["error"]["message"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def call(http: aiohttp.ClientSession, sc: Sidecar, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    data = orjson.dumps(body) if body is not None else None
    async with http.request(method, sc.url + path, data=data, headers=headers or {}) as resp:
        raw = await resp.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = raw
        return resp.status, resp.headers, parsed


async def record(sc: Sidecar, request_id: str) -> dict:
    async with asyncio.timeout(WAIT):
        while True:
            await sc.store.flush()
            row = await asyncio.to_thread(sc.store.get, request_id)
            if row is not None and row["latency_ms"] is not None:
                return row
            await asyncio.sleep(0.02)


@pytest.fixture
async def guarded(upstreams: Upstreams, tmp_path: Path) -> AsyncIterator[Sidecar]:
    """A sidecar with one allowed origin and one allowed extra host."""
    config = config_for(upstreams, tmp_path / "data", {"server": {
        "allowed_origins": ["http://localhost:5173"], "allowed_hosts": ["sidecar.internal"]}})
    sc, runner = await start_sidecar(config, MemoryKeyStore(KEYS))
    yield sc
    await runner.cleanup()  # type: ignore[attr-defined]


# ---- Host: DNS rebinding -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", list(ENDPOINTS))
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8787", "127.0.0.1.nip.io:8787", "localhost.evil.com"])
async def test_foreign_host_gets_403_in_callers_format(http, sidecar, upstreams, fmt, host) -> None:
    path, body = ENDPOINTS[fmt]
    status, _h, data = await call(http, sidecar, "POST", path, body, {"Host": host})
    assert status == 403
    assert "Host" in assert_error_format("openai_chat" if fmt == "openai_responses" else fmt, 403, data)
    assert upstreams.openai.received == [] and upstreams.anthropic.received == [] and upstreams.gemini.received == []


@pytest.mark.parametrize("path", ["/_sidecar/requests", "/_sidecar/stats", "/metrics", "/_sidecar/health"])
async def test_foreign_host_refused_on_control_api_and_metrics(http, sidecar, path) -> None:
    status, _h, _data = await call(http, sidecar, "GET", path, headers={"Host": "attacker.example"})
    assert status == 403
    status, _h, _data = await call(http, sidecar, "POST", "/_sidecar/pause", headers={"Host": "attacker.example"})
    assert status == 403


@pytest.mark.parametrize("host", ["localhost", "localhost:8787", "127.0.0.1:1", "127.8.9.10:8787", "[::1]:8787",
                                  "[::1]", "LOCALHOST:8787"])
async def test_loopback_hosts_pass(http, sidecar, host) -> None:
    status, _h, data = await call(http, sidecar, "POST", CHAT[0], CHAT[1], {"Host": host})
    assert status == 200, data


async def test_allowlisted_host_passes(http, guarded) -> None:
    status, _h, data = await call(http, guarded, "POST", CHAT[0], CHAT[1], {"Host": "sidecar.internal:8787"})
    assert status == 200, data
    status, _h, _ = await call(http, guarded, "POST", CHAT[0], CHAT[1], {"Host": "other.internal:8787"})
    assert status == 403


# ---- Origin: cross-origin browser requests and CORS -------------------------------------------------

@pytest.mark.parametrize("fmt", list(ENDPOINTS))
@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:3000", "http://127.0.0.1:8787"])
async def test_foreign_origin_gets_403_in_callers_format(http, sidecar, upstreams, fmt, origin) -> None:
    path, body = ENDPOINTS[fmt]
    status, headers, data = await call(http, sidecar, "POST", path, body, {"Origin": origin})
    assert status == 403
    assert "origin" in assert_error_format("openai_chat" if fmt == "openai_responses" else fmt, 403, data).lower()
    assert "Access-Control-Allow-Origin" not in headers
    assert upstreams.openai.received == [] and upstreams.anthropic.received == [] and upstreams.gemini.received == []


async def test_foreign_origin_refused_on_control_api(http, sidecar) -> None:
    for method, path in (("GET", "/_sidecar/requests"), ("POST", "/_sidecar/pause"), ("GET", "/metrics")):
        status, headers, _ = await call(http, sidecar, method, path, headers={"Origin": "https://evil.example"})
        assert status == 403 and "Access-Control-Allow-Origin" not in headers


async def test_preflight_only_for_allowed_origin(http, guarded) -> None:
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, authorization"}
    status, headers, _ = await call(http, guarded, "OPTIONS", CHAT[0], headers={"Origin": "http://localhost:5173", **pre})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "authorization" in headers["Access-Control-Allow-Headers"]
    status, headers, _ = await call(http, guarded, "OPTIONS", CHAT[0], headers={"Origin": "https://evil.example", **pre})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    status, headers, _ = await call(http, guarded, "OPTIONS", CHAT[0])
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


async def test_allowed_origin_gets_cors_headers_naming_it_only(http, guarded) -> None:
    status, headers, data = await call(http, guarded, "POST", CHAT[0], CHAT[1], {"Origin": "http://localhost:5173"})
    assert status == 200, data
    assert headers.getall("Access-Control-Allow-Origin") == ["http://localhost:5173"]
    assert "Origin" in headers.get("Vary", "")
    # streamed answers carry it too
    body = {**CHAT[1], "stream": True}
    status, headers, _ = await call(http, guarded, "POST", CHAT[0], body, {"Origin": "http://localhost:5173"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    # no origin: no CORS headers at all, and never a wildcard anywhere
    status, headers, _ = await call(http, guarded, "POST", CHAT[0], CHAT[1])
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


# ---- real CLIs that send browser-looking headers --------------------------------------------------

async def test_gemini_cli_like_headers_pass(http, sidecar) -> None:
    headers = {"sec-fetch-mode": "cors", "x-goog-api-key": "placeholder", "user-agent": "GeminiCLI/0.1.0 (linux)",
               "x-goog-api-client": "google-genai-sdk/1.0 gl-node/22"}
    path, body = GEMINI
    status, _h, data = await call(http, sidecar, "POST", path, body, headers)
    assert status == 200, data


async def test_claude_code_like_headers_pass(http, sidecar) -> None:
    headers = {"anthropic-dangerous-direct-browser-access": "true", "x-api-key": "placeholder",
               "anthropic-version": "2023-06-01", "user-agent": "claude-cli/2.0.0 (external, cli)",
               "x-app": "cli", "sec-fetch-mode": "cors"}
    path, body = MESSAGES
    status, _h, data = await call(http, sidecar, "POST", path, body, headers)
    assert status == 200, data


# ---- client tokens ------------------------------------------------------------------------------

async def test_no_tokens_means_open(http, sidecar) -> None:
    status, _h, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], {"authorization": "Bearer placeholder"})
    assert status == 200


@pytest.mark.parametrize("fmt", list(ENDPOINTS))
async def test_token_required_once_one_exists(http, sidecar, fmt) -> None:
    token = TokenStore(sidecar.config.data_dir).create("my-app")
    await asyncio.sleep(RECHECK_SECONDS * 1.5)  # the running sidecar looks at the token file this often
    path, body = ENDPOINTS[fmt]
    shape = "openai_chat" if fmt == "openai_responses" else fmt
    status, headers, data = await call(http, sidecar, "POST", path, body, auth(fmt, "placeholder"))
    assert status == 401
    assert "token" in assert_error_format(shape, 401, data)
    assert "WWW-Authenticate" in headers
    status, headers, data = await call(http, sidecar, "POST", path, body, auth(fmt, token))
    assert status == 200, data
    row = await record(sidecar, headers["x-sidecar-request-id"])
    assert row["client"] == "my-app"
    assert token not in orjson.dumps(row).decode()


async def test_gemini_key_query_parameter_carries_the_token(http, sidecar, upstreams) -> None:
    token = TokenStore(sidecar.config.data_dir).create("gem")
    path, body = GEMINI
    status, _h, data = await call(http, sidecar, "POST", f"{path}?key={token}", body)
    assert status == 200, data
    status, _h, _ = await call(http, sidecar, "POST", f"{path}?key=wrong", body)
    assert status == 401
    assert all(token not in str(r) for r in upstreams.gemini.received)


async def test_control_api_and_metrics_need_the_token_but_health_stays_open(http, sidecar) -> None:
    token = TokenStore(sidecar.config.data_dir).create("ops")
    await asyncio.sleep(RECHECK_SECONDS * 1.5)
    bearer = {"authorization": f"Bearer {token}"}
    for method, path in (("GET", "/_sidecar/requests"), ("GET", "/_sidecar/stats"), ("GET", "/metrics"),
                         ("GET", "/_sidecar/budgets"), ("POST", "/_sidecar/resume"), ("GET", "/v1/models"),
                         ("GET", "/v1beta/models")):
        status, _h, _ = await call(http, sidecar, method, path)
        assert status == 401, path
        status, _h, data = await call(http, sidecar, method, path, headers=bearer)
        assert status == 200, (path, data)
    status, _h, _ = await call(http, sidecar, "GET", "/_sidecar/health")
    assert status == 200


async def test_wrong_expired_and_revoked_tokens_get_401(http, sidecar) -> None:
    store = TokenStore(sidecar.config.data_dir)
    good = store.create("keeper")
    short = store.create("short", ttl=0.3)
    gone = store.create("gone")
    status, _h, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], auth("openai_chat", short))
    assert status == 200
    await asyncio.sleep(0.4)
    status, _h, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], auth("openai_chat", short))
    assert status == 401
    status, _h, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], auth("openai_chat", "sct_" + "x" * 32))
    assert status == 401
    status, _h, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], auth("openai_chat", gone))
    assert status == 200
    assert store.revoke("gone") == 1
    deadline = time.monotonic() + 2.0  # the running sidecar sees the CLI's revocation within a couple of seconds
    while True:
        status, _h, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], auth("anthropic", gone))
        if status == 401 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert status == 401
    status, _h, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], auth("openai_chat", good))
    assert status == 200


async def test_revoking_the_last_token_opens_again_and_stale_sct_is_still_refused(http, sidecar) -> None:
    store = TokenStore(sidecar.config.data_dir)
    token = store.create("solo")
    store.revoke("solo")
    await asyncio.sleep(0.6)
    status, _h, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], auth("openai_chat", "placeholder"))
    assert status == 200
    status, _h, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], auth("openai_chat", token))
    assert status == 401


async def test_require_token_config(http, upstreams, tmp_path) -> None:
    config = config_for(upstreams, tmp_path / "data", {"server": {"require_token": True}})
    sc, runner = await start_sidecar(config, MemoryKeyStore(KEYS))
    try:
        status, _h, data = await call(http, sc, "POST", MESSAGES[0], MESSAGES[1], auth("anthropic", "placeholder"))
        assert status == 401 and data["type"] == "error"
        token = TokenStore(config.data_dir).create("late")  # picked up by the running sidecar at once
        status, _h, data = await call(http, sc, "POST", MESSAGES[0], MESSAGES[1], auth("anthropic", token))
        assert status == 200, data
    finally:
        await runner.cleanup()  # type: ignore[attr-defined]


async def test_exec_style_ephemeral_token_identifies_without_locking_others_out(http, sidecar) -> None:
    store = TokenStore(sidecar.config.data_dir)
    with store.temporary("agent") as token:
        status, headers, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], auth("openai_chat", token))
        assert status == 200
        assert (await record(sidecar, headers["x-sidecar-request-id"]))["client"] == "agent"
        status, _h, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], auth("openai_chat", "placeholder"))
        assert status == 200
    status, _h, _ = await call(http, sidecar, "POST", CHAT[0], CHAT[1], auth("openai_chat", token))
    assert status == 401


async def test_token_name_overrides_client_header_for_budgets(http, upstreams, tmp_path) -> None:
    config = config_for(upstreams, tmp_path / "data")
    sc, runner = await start_sidecar(config, MemoryKeyStore(KEYS))
    try:
        token = TokenStore(config.data_dir).create("billing-app")
        headers = {**auth("openai_chat", token), "x-sidecar-client": "someone-else"}
        status, h, _ = await call(http, sc, "POST", CHAT[0], CHAT[1], headers)
        assert status == 200
        assert (await record(sc, h["x-sidecar-request-id"]))["client"] == "billing-app"
    finally:
        await runner.cleanup()  # type: ignore[attr-defined]
