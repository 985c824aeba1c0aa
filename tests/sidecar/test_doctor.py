"""A missing, locked or failing keyring: one clear paragraph with the fix per platform, never a traceback.

The keyring is replaced at its backend layer (``keyring.set_keyring``) by small backends that raise the real
exception types keyring's own backends raise; only the platform name is monkeypatched for the per-platform
doctor output.
"""

from __future__ import annotations

import asyncio
import platform
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

from conftest import Upstreams, config_for, start_sidecar
from http_helpers import assert_anthropic_error, assert_gemini_error, assert_openai_error, call
from sidecar import keyring_help
from sidecar.config import Config
from sidecar.doctor import run_doctor
from sidecar.keys import KeyringStore, KeyStoreError

SECRET_ATTR = "attribute-value-7f3a"  # what a backend might put in its exception text: must never be quoted


def raising(exc: BaseException) -> KeyringBackend:
    class Raising(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def get_password(self, service: str, username: str) -> str | None:
            raise exc

        def set_password(self, service: str, username: str, password: str) -> None:
            raise exc

        def delete_password(self, service: str, username: str) -> None:
            raise exc

    return Raising()


class Memory(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self, keys: dict[str, str] | None = None) -> None:
        super().__init__()
        self.keys = dict(keys or {})

    def get_password(self, service: str, username: str) -> str | None:
        return self.keys.get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self.keys[username] = password

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.PasswordDeleteError(username)


def foreign(module: str, name: str) -> BaseException:
    """An exception type a backend lets through keyring, e.g. jeepney's D-Bus error or pywintypes.error."""
    cls = type(name, (Exception,), {"__module__": module})
    return cls(f"org.freedesktop.DBus.Error.ServiceUnknown {SECRET_ATTR}")


@pytest.fixture
def use_backend() -> Iterator:
    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


# --- what KeyringStore raises ------------------------------------------------------------------------

@pytest.mark.parametrize("exc, kind, words", [
    (keyring.errors.NoKeyringError(f"No recommended backend {SECRET_ATTR}"), "no_backend", "no usable keyring backend"),
    (keyring.errors.KeyringLocked(f"Failed to unlock the collection! {SECRET_ATTR}"), "locked", "locked"),
    (keyring.errors.InitError(f"Failed to create the collection: Prompt dismissed {SECRET_ATTR}"), "cannot_open",
     "could not be opened"),
    (keyring.errors.KeyringError(f"Can't get password from keychain: (-25308, 'Unknown Error') {SECRET_ATTR}"),
     "locked", "errSecInteractionNotAllowed"),
    (foreign("jeepney.wrappers", "DBusErrorResponse"), "cannot_open", "jeepney DBusErrorResponse"),
    (foreign("secretstorage.exceptions", "LockedException"), "locked", "locked"),
    (foreign("pywintypes", "error"), "failed", "failed (error)"),
    (OSError(5, f"I/O error {SECRET_ATTR}"), "failed", "OSError"),
])
def test_every_backend_failure_becomes_one_explained_error(use_backend, exc, kind, words) -> None:
    use_backend(raising(exc))
    store = KeyringStore()
    for call_ in (lambda: store.get("openai"), lambda: store.set("openai", "sk-x"), lambda: store.delete("openai")):
        with pytest.raises(KeyStoreError) as info:
            call_()
        err = info.value
        assert err.problem is not None and err.problem.kind == kind
        message = str(err)
        assert words in message and "sidecar doctor" in message and "Fix:" in message
        assert SECRET_ATTR not in message and err.__cause__ is None and err.__suppress_context__


def test_null_backend_refuses_to_pretend_a_key_was_stored(use_backend) -> None:
    use_backend(null.Keyring())
    with pytest.raises(KeyStoreError) as info:
        KeyringStore().set("openai", "sk-x")
    assert info.value.problem.kind == "stores_nothing" and "null" in str(info.value)
    assert KeyringStore().get("openai") is None  # reading is still just "no key"


@pytest.mark.parametrize("system, needles", [
    ("Linux", ["Seahorse", "gnome-keyring-daemon"]),
    ("Darwin", ["security unlock-keychain", "Always Allow"]),
    ("Windows", ["Credential Manager"]),
    ("FreeBSD", ["unlock the system keyring"]),
])
def test_locked_fix_per_platform(system, needles) -> None:
    fix = keyring_help.fix_for("locked", system)
    for needle in needles:
        assert needle in fix


@pytest.mark.parametrize("system, needles", [
    ("Linux", ["gnome-keyring", "KWallet", "dbus-run-session", "PYTHON_KEYRING_BACKEND"]),
    ("Darwin", ["macOS Keychain", "PYTHON_KEYRING_BACKEND"]),
    ("Windows", ["Credential Locker", "pywin32-ctypes"]),
])
def test_no_backend_fix_per_platform(system, needles) -> None:
    fix = keyring_help.fix_for("no_backend", system)
    for needle in needles:
        assert needle in fix


# --- sidecar doctor --------------------------------------------------------------------------------------

def doctor(tmp_path: Path, capsys, system: str, monkeypatch) -> tuple[int, str]:
    monkeypatch.setattr(platform, "system", lambda: system)
    config = Config(port=1, data_dir=tmp_path / "data")  # nothing listens on port 1: "not running"
    code = run_doctor(config)
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.out


@pytest.mark.parametrize("system, needle", [
    ("Linux", "gnome-keyring-daemon --replace --unlock"),
    ("Darwin", "security unlock-keychain"),
    ("Windows", "Credential Manager"),
])
def test_doctor_explains_a_locked_keyring_per_platform(use_backend, tmp_path, capsys, monkeypatch,
                                                       system, needle) -> None:
    use_backend(raising(keyring.errors.KeyringLocked(f"Failed to unlock the collection! {SECRET_ATTR}")))
    code, out = doctor(tmp_path, capsys, system, monkeypatch)
    assert code == 1
    assert "[FAIL] keyring: the keyring is locked" in out and needle in out and SECRET_ATTR not in out
    assert f", {system}" in out.splitlines()[0]


def test_doctor_explains_no_backend(use_backend, tmp_path, capsys, monkeypatch) -> None:
    use_backend(fail.Keyring())
    code, out = doctor(tmp_path, capsys, "Linux", monkeypatch)
    assert code == 1
    assert "[FAIL] keyring: no usable keyring backend was found (backend keyring.backends.fail.Keyring)" in out
    assert "Secret Service" in out and "PYTHON_KEYRING_BACKEND" in out
    assert "provider keys" not in out  # every lookup would fail the same way: not repeated


def test_doctor_flags_the_null_backend(use_backend, tmp_path, capsys, monkeypatch) -> None:
    use_backend(null.Keyring())
    code, out = doctor(tmp_path, capsys, "Linux", monkeypatch)
    assert code == 1 and "stores nothing" in out and "unset it" in out


def test_doctor_all_well(use_backend, tmp_path, capsys, monkeypatch) -> None:
    use_backend(Memory({"openai": "sk-doctor-secret-1234567"}))
    code, out = doctor(tmp_path, capsys, "Linux", monkeypatch)
    assert code == 0, out
    assert f"[ok  ] keyring: {Memory.__module__}.Memory" in out
    assert "[ok  ] provider keys: openai" in out and "sk-doctor-secret" not in out
    assert "[--  ] proxy: not running on 127.0.0.1:1" in out


# --- the proxy's request path -----------------------------------------------------------------------

@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("path, body, check", [
    ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
     assert_openai_error),
    ("/v1/messages", {"model": "anthropic/claude-haiku-4-5", "max_tokens": 5,
                      "messages": [{"role": "user", "content": "hi"}]}, assert_anthropic_error),
    ("/v1beta/models/gemini-2.5-flash:generateContent", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
     assert_gemini_error),
])
async def test_locked_keyring_on_the_request_path_is_503_saying_what_to_do(
        use_backend, upstreams: Upstreams, tmp_path, http, caplog, path, body, check) -> None:
    use_backend(raising(keyring.errors.KeyringLocked(f"Failed to unlock the collection! {SECRET_ATTR}")))
    sc, runner = await start_sidecar(config_for(upstreams, tmp_path / "data"), KeyringStore())
    try:
        reply = await call(http, "POST", sc.url + path, body=body)
        err = check(reply, 503)
        assert "the keyring is locked" in err["message"] and "`sidecar doctor`" in err["message"]
        assert SECRET_ATTR not in reply.body.decode()
    finally:
        await runner.cleanup()  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.exc_info]  # no traceback logged either
    assert not (upstreams.openai.received or upstreams.anthropic.received or upstreams.gemini.received)


async def test_doctor_reports_an_unwritable_request_log(use_backend, upstreams, tmp_path, capsys,
                                                        monkeypatch) -> None:
    """The running proxy's /health says the store is unwritable; doctor turns that into a FAIL with the fix."""
    use_backend(Memory())
    sc, runner = await start_sidecar(config_for(upstreams, tmp_path / "data"), KeyringStore())
    try:
        done = threading.Event()

        def full() -> None:  # on the writer thread: SQLite's own SQLITE_FULL from the next new page on
            conn: sqlite3.Connection = sc.store._conn  # type: ignore[assignment]
            conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
            done.set()

        sc.store._queue.put(full)
        assert done.wait(5)
        sc.store.add(replace(_record(), id="held-1"), request_body=b"z" * 9000)
        await sc.store.flush()
        port = int(sc.url.rsplit(":", 1)[1])
        monkeypatch.setattr(platform, "system", lambda: "Linux")
        code = await asyncio.to_thread(run_doctor, replace(sc.config, port=port))
        out = capsys.readouterr().out
        assert code == 1 and "[FAIL] request log: not writable since" in out
        assert "database or disk is full" in out and "1 records held in memory" in out
    finally:
        await runner.cleanup()  # type: ignore[attr-defined]


def _record():
    from sidecar.records import RequestRecord

    return RequestRecord(id="x", ts="2025-01-01T00:00:00.000Z", inbound="openai_chat", requested_model="m")




async def test_a_keyring_failure_is_remembered_briefly_then_retried() -> None:
    """A locked keyring may prompt per lookup: the cache asks it once per ERROR_TTL, not once per request."""
    from sidecar import keys as keys_module
    from sidecar.keys import KeyCache, MemoryKeyStore

    class Flaky(MemoryKeyStore):
        calls = 0
        locked = True

        def get(self, provider: str) -> str | None:
            self.calls += 1
            if self.locked:
                raise KeyStoreError("keyring (x): the keyring is locked", None)
            return super().get(provider)

    store = Flaky({"openai": "sk-flaky-0001"})
    cache = KeyCache(store)
    for _ in range(5):
        with pytest.raises(KeyStoreError, match="locked"):
            await cache.get("openai")
    assert store.calls == 1
    store.locked = False
    entry = cache._cache["openai"]
    assert entry.error is not None and entry.expires - time.monotonic() <= keys_module.ERROR_TTL
    entry.expires = 0.0  # ERROR_TTL has passed
    assert await cache.get("openai") == "sk-flaky-0001" and store.calls == 2
