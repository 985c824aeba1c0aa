"""Provider keys through the control API: list, set, replace, delete — over real HTTP, with a canary key.

The sidecar fixture's key store is a `MemoryKeyStore`; the fake OpenAI upstream checks the key it receives
(`expect_key`), so a request that succeeds after a `PUT` proves the proxy dropped its cached key at once
(the cache's TTL is 30 s). The canary must appear in no control-API answer, no log record (DEBUG) and no
event, and nowhere in the data dir.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import orjson
import pytest

from sidecar.events import Event
from sidecar.keys import KeyStoreError, MemoryKeyStore, mask
from sidecar.state import STATE

if TYPE_CHECKING:  # never imported at run time: `conftest` is ambiguous next to tests/tui/conftest.py
    from conftest import Sidecar, Upstreams

CANARY = "sk-canary-" + secrets.token_hex(16)
CANARY_2 = "sk-canary2-" + secrets.token_hex(16)
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Recorder:
    """Every response body, every event and the keys' control-API answers, for the canary check."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.bodies: list[bytes] = []

    async def call(self, method: str, path: str, body: object = None, raw: bytes | None = None) -> tuple[int, object]:
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        async with self.session.request(method, self.base + path, data=data) as resp:
            payload = await resp.read()
            self.bodies.append(payload + str(dict(resp.headers)).encode())
            try:
                return resp.status, orjson.loads(payload)
            except orjson.JSONDecodeError:
                return resp.status, payload


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.fixture
def events(sidecar: Sidecar):
    seen: list[Event] = []
    bus = sidecar.app[STATE].bus  # type: ignore[index]
    bus.add_listener(seen.append)
    yield seen
    bus.remove_listener(seen.append)


def listing(body: object) -> dict[str, dict]:
    assert isinstance(body, dict)
    return {k["provider"]: k for k in body["keys"]}


async def test_set_replace_delete_and_the_proxy_uses_the_new_key(
    sidecar: Sidecar, upstreams: Upstreams, http, events, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder(http, sidecar.url)
    old_key = sidecar.keys.get("openai")
    assert old_key and old_key == upstreams.openai.expect_key

    status, body = await rec.call("GET", "/_sidecar/keys")
    assert status == 200
    keys = listing(body)
    assert keys["openai"] == {"provider": "openai", "adapter": keys["openai"]["adapter"], "needs_key": True,
                              "has_key": True, "hint": mask(old_key)}
    assert old_key.encode() not in rec.bodies[-1]
    assert keys["anthropic"]["has_key"] is True

    # Warm the proxy's key cache with the old key, so the next step proves the cache was invalidated.
    status, _ = await rec.call("POST", "/v1/chat/completions", CHAT)
    assert status == 200

    upstreams.openai.expect_key = CANARY
    status, body = await rec.call("PUT", "/_sidecar/keys/openai", {"key": CANARY})
    assert status == 200 and body == {"provider": "openai", "hint": mask(CANARY)}
    assert sidecar.keys.get("openai") == CANARY
    status, _ = await rec.call("POST", "/v1/chat/completions", CHAT)
    assert status == 200, "the proxy must use the new key on its very next request"
    assert upstreams.openai.received[-1].headers.get("authorization") == f"Bearer {CANARY}"
    status, body = await rec.call("GET", "/_sidecar/keys")
    assert listing(body)["openai"]["hint"] == mask(CANARY)

    # Replace (pasted with a trailing newline: stored trimmed).
    upstreams.openai.expect_key = CANARY_2
    status, body = await rec.call("PUT", "/_sidecar/keys/openai", {"key": CANARY_2 + "\n"})
    assert status == 200 and body == {"provider": "openai", "hint": mask(CANARY_2)}
    status, _ = await rec.call("POST", "/v1/chat/completions", CHAT)
    assert status == 200

    before = len(upstreams.openai.received)
    status, body = await rec.call("DELETE", "/_sidecar/keys/openai")
    assert status == 200 and body == {"provider": "openai", "deleted": True}
    assert sidecar.keys.get("openai") is None
    status, body = await rec.call("GET", "/_sidecar/keys")
    assert listing(body)["openai"]["has_key"] is False and listing(body)["openai"]["hint"] is None
    status, body = await rec.call("POST", "/v1/chat/completions", CHAT)
    assert status == 401 and "no key for provider 'openai'" in body["error"]["message"]  # type: ignore[index]
    assert len(upstreams.openai.received) == before, "no key: nothing may go upstream"
    status, body = await rec.call("DELETE", "/_sidecar/keys/openai")
    assert status == 200 and body == {"provider": "openai", "deleted": False}

    assert [(e.type, e.data["provider"], e.data["action"]) for e in events if e.type == "key_changed"] == [
        ("key_changed", "openai", "set"), ("key_changed", "openai", "set"), ("key_changed", "openai", "deleted"),
    ]

    # The canary: the upstream got it, and it is nowhere else.
    assert any(CANARY in str(r.headers) for r in upstreams.openai.received)
    await sidecar.store.flush()
    for secret in (CANARY, CANARY_2):
        for blob in rec.bodies:
            assert secret.encode() not in blob
        for record in caplog.records:
            assert secret not in record.getMessage() and secret not in str(record.args)
        for event in events:
            assert secret not in orjson.dumps(event.data).decode()
        for path in Path(sidecar.config.data_dir).rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


async def test_refusals(sidecar: Sidecar, http, events, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rec = Recorder(http, sidecar.url)
    before = sidecar.keys.get("openai")
    for method in ("PUT", "DELETE"):
        status, body = await rec.call(method, "/_sidecar/keys/nope", {"key": CANARY})
        assert status == 404 and "nope" in str(body)
    for bad in ({"key": ""}, {"key": "   \t"}, {"key": None}, {"key": 5}, {}, [CANARY], {"key": "a b" + CANARY}):
        status, body = await rec.call("PUT", "/_sidecar/keys/openai", bad)
        assert status == 400, bad
    status, _ = await rec.call("PUT", "/_sidecar/keys/openai", raw=b'{"key": "' + CANARY.encode())
    assert status == 400
    status, _ = await rec.call("PUT", "/_sidecar/keys/openai")
    assert status == 400
    assert sidecar.keys.get("openai") == before, "a refused write changes nothing"
    assert not [e for e in events if e.type == "key_changed"]
    for blob in rec.bodies:
        assert CANARY.encode() not in blob
    assert all(CANARY not in r.getMessage() for r in caplog.records)


class BrokenKeyring(MemoryKeyStore):
    def _fail(self, *_: object) -> None:
        raise KeyStoreError("keyring (test.Broken): the keyring is locked; unlock it.")

    get = set = delete = _fail  # type: ignore[assignment]


async def test_keyring_failure_is_503_with_its_message(sidecar: Sidecar, http) -> None:
    sidecar.app[STATE].keys.store = BrokenKeyring()  # type: ignore[index]
    rec = Recorder(http, sidecar.url)
    status, body = await rec.call("GET", "/_sidecar/keys")
    assert status == 200 and all(k["has_key"] is None and k["hint"] is None for k in listing(body).values())
    for method in ("PUT", "DELETE"):
        status, body = await rec.call(method, "/_sidecar/keys/openai", {"key": CANARY})
        assert status == 503 and "the keyring is locked" in body["error"]["message"]  # type: ignore[index]
    assert all(CANARY.encode() not in b for b in rec.bodies)


async def test_set_runs_off_the_event_loop(sidecar: Sidecar, http) -> None:
    """A slow keyring (a D-Bus prompt) must not stall the proxy: the loop answers health meanwhile."""
    import threading

    release = threading.Event()
    store = sidecar.keys
    real_set = store.set

    def slow_set(provider: str, secret: str) -> None:
        release.wait(10)
        real_set(provider, secret)

    store.set = slow_set  # type: ignore[method-assign]
    rec = Recorder(http, sidecar.url)
    put = asyncio.create_task(rec.call("PUT", "/_sidecar/keys/openai", {"key": CANARY}))
    try:
        status, body = await asyncio.wait_for(rec.call("GET", "/_sidecar/health"), 5)
        assert status == 200 and not put.done()
    finally:
        release.set()
    status, body = await put
    assert status == 200 and body == {"provider": "openai", "hint": mask(CANARY)}


async def test_tui_keys_view_against_a_real_sidecar(sidecar: Sidecar, upstreams: Upstreams, http) -> None:
    """The whole path: Keys view (`K`) → masked input → real control API → key store → the proxy's next
    request carries the new key; `d` + `y` deletes it. The key is never on screen."""
    from tui.app import SidecarApp
    from tui.screens.keys import ConfirmScreen, KeyInputScreen, KeysScreen, KeysTable

    def row(app: SidecarApp, pid: str) -> list[str]:
        table = app.screen.query_one(KeysTable)
        return [str(c) for c in table.get_row(pid)]

    def on_screen(app: SidecarApp) -> str:
        return "\n".join(s.text for s in app.screen._compositor.render_strips())

    async def until(pilot, cond, tries: int = 250) -> None:
        for _ in range(tries):
            if cond():
                return
            await pilot.pause(0.02)
        assert cond(), "condition not reached"

    app = SidecarApp(sidecar.url, backoff=(0.02, 0.1))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, KeysScreen) and app.screen.loads >= 1)
        assert row(app, "openai")[2] == "yes"
        table = app.screen.query_one(KeysTable)
        table.move_cursor(row=table.get_row_index("openai"))
        upstreams.openai.expect_key = CANARY
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, KeyInputScreen))
        await pilot.press(*CANARY)
        assert CANARY not in on_screen(app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, KeysScreen) and row(app, "openai")[3] == mask(CANARY))
        assert sidecar.keys.get("openai") == CANARY
        assert CANARY not in on_screen(app)
        async with http.post(sidecar.url + "/v1/chat/completions", data=orjson.dumps(CHAT)) as resp:
            assert resp.status == 200
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, KeysScreen) and row(app, "openai")[2] == "no")
        assert sidecar.keys.get("openai") is None
