"""Request detail actions against a real sidecar and fake providers: copy as curl (the copied command is run
with bash and must work), replay through the proxy, and the key canary over everything the TUI shows."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from sidecar.app import ACCESS, build_app
from sidecar.config import config_from_dict
from sidecar.fake_upstream import FakeUpstream
from sidecar.keys import MemoryKeyStore
from sidecar.server import start_server
from sidecar.store import RequestStore
from tui.app import SidecarApp
from tui.screens.detail import CurlScreen, DetailScreen
from tui.screens.keys import ConfirmScreen
from tui.widgets.traffic_table import TrafficTable

SIZE = (120, 40)
KEYS = {"openai": "sk-detail-openai-5b1f", "anthropic": "sk-ant-detail-77c2", "gemini": "AIza-detail-90e4"}
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "say it's \"$(fine)\" 日本"}]}
MESSAGES = {"model": "anthropic/claude-haiku-4-5", "max_tokens": 20, "stream": True,
            "messages": [{"role": "user", "content": "hello `there`"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
GEMINI_STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


@dataclass
class Real:
    url: str
    app: Any
    store: RequestStore
    fakes: dict[str, FakeUpstream]

    async def send(self, path: str, body: Any, *, expect: int | None = 200) -> str:
        """One client request (placeholder key, as SDKs send); answers the new record's id."""
        headers = {"Authorization": "Bearer placeholder", "anthropic-version": "2023-06-01",
                   "X-Sidecar-Client": "pytest"}
        async with aiohttp.ClientSession() as http:
            async with http.post(self.url + path, data=orjson.dumps(body), headers=headers) as resp:
                raw = await resp.read()
        if expect is not None:
            assert resp.status == expect, raw[:300]
        return resp.headers["x-sidecar-request-id"]

    async def records(self) -> list[dict[str, Any]]:
        await self.store.flush()
        return self.store.recent(100)


Start = Callable[..., Any]


@pytest.fixture
async def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Start]:
    """`await start(keys=..., config=...)`: fakes requiring `keys`, and a sidecar in front of them."""
    monkeypatch.delenv("SIDECAR_TOKEN", raising=False)
    cleanups: list[Any] = []

    async def go(keys: dict[str, str] = KEYS, config: dict[str, Any] | None = None, echo: bool = False) -> Real:
        fakes = {p: FakeUpstream(p, expect_key=keys[p]) for p in ("openai", "anthropic", "gemini")}
        for fake in fakes.values():
            fake.echo_headers_on_error = echo
            await fake.start()
            cleanups.append(fake.close)
        raw: dict[str, Any] = {"providers": {p: {"base_url": f.base_url} for p, f in fakes.items()}}
        for section, values in (config or {}).items():
            raw.setdefault(section, {}).update(values)
        cfg = replace(config_from_dict(raw), data_dir=tmp_path / "data")
        store = RequestStore(cfg.db_path, body_cap=cfg.body_cap_bytes)
        app = build_app(cfg, keys=MemoryKeyStore(keys), store=store)
        runner, url = await start_server(app, "127.0.0.1", 0)
        cleanups.append(runner.cleanup)
        return Real(url, app, store, fakes)

    yield go
    for cleanup in reversed(cleanups):
        await cleanup()


def make_app(url: str) -> SidecarApp:
    app = SidecarApp(url, backoff=(0.02, 0.1))
    app.NOTIFICATION_TIMEOUT = 600  # toasts are asserted on; a loaded machine must not let them expire first
    return app


async def until(pilot: Pilot[Any], cond: Callable[[], bool], tries: int = 400) -> None:
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.02)
    assert cond(), "condition not reached"


async def open_detail(pilot: Pilot[Any], app: SidecarApp, rid: str) -> DetailScreen:
    screen = DetailScreen(rid, app.client, None)
    await app.push_screen(screen)
    await until(pilot, lambda: screen.record is not None and screen.providers is not None)
    return screen


async def bash(command: str, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out, err


def notes(app: SidecarApp) -> list[str]:
    return [n.message for n in app._notifications]


def screen_text(app: SidecarApp) -> str:
    """What is on screen (all layers), plus the full text of every Static (bodies below the fold too)."""
    strips = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
    return strips + "\n" + "\n".join(str(w.content) for w in app.screen.query(Static))


async def test_copied_curl_runs_and_direct_variant_reads_the_keyring(start: Start) -> None:
    real = await start()
    first = await real.send("/v1/chat/completions", CHAT)
    app = make_app(real.url)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(TrafficTable)
        await until(pilot, lambda: table.row_count == 1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.record is not None)
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        await until(pilot, lambda: detail.providers is not None)
        footer = screen_text(app).split("\n")[SIZE[1] - 1]
        assert "c Copy curl" in footer and "R Replay" in footer
        ids = {a.binding.id for a in detail.active_bindings.values()}
        assert {"detail.copy_curl", "detail.copy_curl_direct", "detail.replay"} <= ids

        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CurlScreen))
        command = app.clipboard
        assert command.startswith(f"curl -sS {real.url}/v1/chat/completions")
        assert "curl via the sidecar copied to the clipboard" in notes(app)
        assert "Bearer placeholder" in command and "curl" in screen_text(app)

        # The copied command really works: bash runs it against the sidecar, which records a new request.
        code, out, err = await bash(command)
        assert code == 0, err
        answer = json.loads(out)
        assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"]
        rows = await real.records()
        assert len(rows) == 2 and rows[0]["id"] != first
        assert rows[0]["status"] == 200 and rows[0]["requested_model"] == "openai/gpt-4o-mini"
        assert rows[0]["client"].startswith("curl/")
        sent = real.fakes["openai"].received[-1].json
        assert sent["messages"] == CHAT["messages"], "quotes, $( and unicode arrived unchanged"

        # `C` switches to the direct variant: a keyring lookup, never the key.
        await pilot.press("C")
        direct = app.clipboard
        assert direct.startswith("curl -sS " + real.fakes["openai"].base_url + "/chat/completions")
        assert '"Authorization: Bearer $(python3 -m keyring get llm-sidecar openai)"' in direct
        assert '"model": "gpt-4o-mini"' in direct, "the model as sent upstream"
        assert all(key not in direct and key not in screen_text(app) for key in KEYS.values())
        assert "curl direct to openai copied to the clipboard" in notes(app)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is detail)

        # `C` on the detail screen opens the direct variant straight away.
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, CurlScreen))
        assert app.screen.shown == "direct" and app.clipboard == direct


async def test_curl_for_streams_and_other_formats_runs(start: Start) -> None:
    real = await start()
    ids = [await real.send("/v1/messages", MESSAGES), await real.send(GEMINI_STREAM, GEMINI)]
    app = make_app(real.url)
    async with app.run_test(size=SIZE) as pilot:
        for rid, marker in zip(ids, (b"event: message_stop", b'"finishReason"')):
            detail = await open_detail(pilot, app, rid)
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, CurlScreen))
            command = app.clipboard
            assert " -N " in command, "streams are not buffered by curl"
            code, out, err = await bash(command)
            assert code == 0 and marker in out, (err, out[-300:])
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is detail)
            await pilot.press("escape")
        rows = await real.records()
        assert [r["status"] for r in rows] == [200] * 4
        assert {r["inbound"] for r in rows[:2]} == {"anthropic", "gemini"}


async def test_replay_goes_through_the_proxy_as_tui_replay(start: Start) -> None:
    real = await start()
    rid = await real.send("/v1/messages", MESSAGES)
    app = make_app(real.url)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(TrafficTable)
        await until(pilot, lambda: table.row_count == 1)
        detail = await open_detail(pilot, app, rid)

        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = screen_text(app)
        assert "Replay to anthropic/claude-haiku-4-5" in question and "costs money" in question
        await pilot.press("n")
        await until(pilot, lambda: app.screen is detail)
        assert len(await real.records()) == 1, "no means no request"

        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: any(n.startswith(f"replayed {rid} as ") for n in notes(app)))
        toast = next(n for n in notes(app) if n.startswith(f"replayed {rid} as "))
        rows = await real.records()
        assert len(rows) == 2
        new = rows[0]
        assert toast == f"replayed {rid} as {new['id']}: HTTP 200"
        assert new["requested_model"] == "anthropic/claude-haiku-4-5" and new["stream"] is True
        assert new["client"] == "tui-replay" and new["status"] == 200 and new["error"] is None
        assert new["output_tokens"], "the replayed stream was read to its end and metered"
        assert real.fakes["anthropic"].received[-1].json["messages"] == MESSAGES["messages"]
        # It is a normal record: the live feed puts it in the traffic list.
        await until(pilot, lambda: table.row_count == 2 and new["id"] in table.rows)


async def test_replay_refused_cleanly_without_the_token_the_sidecar_requires(start: Start) -> None:
    real = await start()
    rid = await real.send("/v1/chat/completions", CHAT)
    app = make_app(real.url)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app, rid)
        real.app[ACCESS].require_token = True  # e.g. `[server] require_token`, or a first token was created
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: any(n.startswith("replay refused") for n in notes(app)))
        toast = next(n for n in notes(app) if n.startswith("replay refused"))
        assert toast.startswith("replay refused: HTTP 401: this sidecar requires a client token")
        assert len(await real.records()) == 1, "refused at the door: nothing sent upstream, nothing recorded"
        assert len(real.fakes["openai"].received) == 1

        # Opened now, the record itself cannot be read without a token: nothing to replay, and it says why.
        await pilot.press("escape")
        again = DetailScreen(rid, app.client, None)
        await app.push_screen(again)
        await until(pilot, lambda: again.load_error is not None)
        await pilot.press("R")
        await until(pilot, lambda: any(n.startswith("could not load the request") for n in notes(app)))
        assert "HTTP 401" in next(n for n in notes(app) if n.startswith("could not load the request"))
        assert app.screen is again


async def test_with_a_client_token_curl_and_replay_obey_the_same_rules(start: Start,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    real = await start(config={"server": {"require_token": True}})
    token = "sct_" + secrets.token_urlsafe(18)
    real.app[ACCESS].internal_tokens[token] = "tui"
    async with aiohttp.ClientSession() as http:
        async with http.post(real.url + "/v1/chat/completions", data=orjson.dumps(CHAT),
                             headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200
            rid = resp.headers["x-sidecar-request-id"]
    monkeypatch.setenv("SIDECAR_TOKEN", token)
    app = make_app(real.url)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app, rid)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CurlScreen))
        command = app.clipboard
        assert token not in command and "${SIDECAR_TOKEN:-placeholder}" in command
        code, out, err = await bash(command)
        assert code == 0 and b"this sidecar requires a client token" in out, "no token in the shell: a clear 401"
        assert len(await real.records()) == 1
        code, out, err = await bash(command, {"SIDECAR_TOKEN": token})
        assert code == 0 and json.loads(out)["object"] == "chat.completion", err
        await pilot.press("escape")

        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: any(n.startswith(f"replayed {rid} as ") for n in notes(app)))
        rows = await real.records()
        assert len(rows) == 3
        # A token's name is authoritative over X-Sidecar-Client: per-client budgets cannot be dodged.
        assert rows[0]["client"] == "tui" and rows[0]["status"] == 200


async def test_no_curl_and_no_replay_when_bodies_are_not_stored(start: Start) -> None:
    real = await start(config={"store": {"bodies": False}})
    rid = await real.send("/v1/chat/completions", CHAT)
    app = make_app(real.url)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app, rid)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CurlScreen))
        assert "no command: the request body was not stored" in screen_text(app)
        assert not app.clipboard, "nothing wrong is copied"
        assert any(n.startswith("no curl via the sidecar: the request body was not stored") for n in notes(app))
        await pilot.press("escape")
        await pilot.press("R")
        await until(pilot, lambda: any(n.startswith("cannot replay: the request body was not stored")
                                       for n in notes(app)))
        assert not isinstance(app.screen, ConfirmScreen)


async def test_key_canary_never_reaches_the_detail_view_or_curl(start: Start) -> None:
    canary = "sk-canary-" + secrets.token_hex(12)
    real = await start(keys={p: canary for p in KEYS}, echo=True)
    ok = [await real.send("/v1/chat/completions", CHAT), await real.send("/v1/messages", MESSAGES),
          await real.send("/v1beta/models/gemini-2.5-flash:generateContent", GEMINI)]
    real.fakes["openai"].fail_next(500)  # the fake echoes the headers it got, key included, in its error message
    failed = [await real.send("/v1/chat/completions", CHAT, expect=500)]
    real.fakes["anthropic"].fail_next(401)
    failed.append(await real.send("/v1/messages", {**MESSAGES, "stream": False}, expect=401))
    seen: list[str] = []
    app = make_app(real.url)
    async with app.run_test(size=SIZE) as pilot:
        for rid in ok + failed:
            detail = await open_detail(pilot, app, rid)
            body = detail.query_one("#response-body", Static)
            await until(pilot, lambda: str(body.content) != "loading…")
            seen += [screen_text(app), orjson.dumps(detail.record).decode()]
            seen += [c.command or "" for c in detail.curls().values()] + [c.note for c in detail.curls().values()]
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, CurlScreen))
            seen += [screen_text(app), app.clipboard]
            await pilot.press("C")
            seen += [screen_text(app), app.clipboard]
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is detail)
            if rid in (ok[1], failed[0]):
                # Replayed once fine and once into another echoed error, whose message the toast shows.
                if rid == failed[0]:
                    real.fakes["openai"].fail_next(500)
                await pilot.press("R")
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
                seen.append(screen_text(app))
                await pilot.press("y")
                await until(pilot, lambda: any(n.startswith((f"replayed {rid}", f"replay of {rid}"))
                                               for n in notes(app)))
            await pilot.press("escape")
        seen += notes(app)
        seen.append(screen_text(app))

    # Not vacuous: the fakes got the canary and echoed it back (redacted by the sidecar on the way); the
    # replay's error toast carried such an echo; the direct curls were made.
    assert all(any(canary in str(r.headers) for r in f.received) for f in real.fakes.values())
    assert sum("[REDACTED]" in s for s in seen) >= 4
    assert any(n.startswith(f"replay of {failed[0]}") and "[REDACTED]" in n for n in notes(app))
    assert any("python3 -m keyring get llm-sidecar gemini" in s for s in seen)
    assert len(await real.records()) == len(ok + failed) + 2
    leaks = [s[max(0, s.index(canary) - 80):s.index(canary) + 20] for s in seen if canary in s]
    assert not leaks, leaks


BACKEND = """
import json, os
from keyring.backend import KeyringBackend

class Backend(KeyringBackend):
    priority = 1

    def get_password(self, service, username):
        with open(os.environ["TEST_KEYRING_FILE"]) as f:
            return json.load(f).get(service + "/" + username)

    def set_password(self, service, username, password):
        raise NotImplementedError

    def delete_password(self, service, username):
        raise NotImplementedError
"""


async def test_direct_curl_works_with_the_key_from_the_keyring(start: Start, tmp_path: Path) -> None:
    """The direct command run for real: keyring's own CLI (`python3 -m keyring get`) fetches the key, chosen the
    way keyring lets users choose a backend (`PYTHON_KEYRING_BACKEND`), and the provider accepts it."""
    real = await start()
    rid = await real.send("/v1/chat/completions", CHAT)
    app = make_app(real.url)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app, rid)
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, CurlScreen))
        command = app.clipboard
    assert KEYS["openai"] not in command
    (tmp_path / "canned_keyring.py").write_text(BACKEND)
    (tmp_path / "keys.json").write_text(json.dumps({"llm-sidecar/openai": KEYS["openai"]}))
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",  # python3 = this venv's (has keyring)
           "PYTHONPATH": str(tmp_path), "PYTHON_KEYRING_BACKEND": "canned_keyring.Backend",
           "TEST_KEYRING_FILE": str(tmp_path / "keys.json")}
    code, out, err = await bash(command, env)
    assert code == 0, err
    assert json.loads(out)["object"] == "chat.completion", out[:300]
    received = real.fakes["openai"].received[-1]
    assert received.headers["authorization"] == f"Bearer {KEYS['openai']}" and received.json["model"] == "gpt-4o-mini"
