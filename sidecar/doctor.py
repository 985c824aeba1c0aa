"""``sidecar doctor``: what is set up, what is missing, and the fix for each — in plain words."""

from __future__ import annotations

import platform
import sys
import urllib.request

import keyring
import orjson

from sidecar import __version__
from sidecar.config import Config
from sidecar.keys import KeyringStore, KeyStoreError

_KEYRING_HELP = {
    "Linux": "install and unlock a Secret Service: GNOME Keyring (gnome-keyring), KDE KWallet, or KeePassXC "
             "with Secret Service enabled; headless, run `dbus-run-session` and "
             "`gnome-keyring-daemon --unlock --components=secrets`",
    "Darwin": "the macOS Keychain is used; unlock the login keychain (Keychain Access)",
    "Windows": "Windows Credential Locker is used; it needs no setup",
}


def run_doctor(config: Config) -> int:
    problems = 0

    def line(ok: bool | None, what: str, detail: str = "") -> None:
        nonlocal problems
        mark = {True: "ok  ", False: "FAIL", None: "--  "}[ok]
        problems += ok is False
        print(f"[{mark}] {what}" + (f": {detail}" if detail else ""))

    print(f"llm-sidecar {__version__}, Python {sys.version.split()[0]}, {platform.system()}")
    line(True, "config", str(config.source) if config.source else "no file; built-in presets")
    for warning in config.warnings:
        line(None, "config note", warning)
    backend = keyring.get_keyring()
    store = KeyringStore()
    try:
        keys = {pid: bool(store.get(pid)) for pid, p in config.providers.items() if p.needs_key}
        line(True, "keyring", f"{type(backend).__module__}.{type(backend).__name__}")
        have = sorted(p for p, ok in keys.items() if ok)
        line(bool(have) or None, "provider keys",
             ", ".join(have) if have else "none yet: printf %s \"$KEY\" | sidecar keys set openai")
    except KeyStoreError as exc:
        line(False, "keyring", f"{exc}\n       fix: {_KEYRING_HELP.get(platform.system(), 'see the keyring docs')}")
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        probe = config.data_dir / ".doctor-probe"
        probe.write_bytes(b"")
        probe.unlink()
        line(True, "data dir", str(config.data_dir))
    except OSError as exc:
        line(False, "data dir", f"{config.data_dir} is not writable: {exc.strerror}")
    url = f"http://{config.host}:{config.port}/_sidecar/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - a loopback URL we built
            health = orjson.loads(resp.read())
        line(True, "proxy", f"running at {health.get('listen') or url} (version {health.get('version')})")
    except OSError:
        line(None, "proxy", f"not running on {config.host}:{config.port}; start it with `sidecar serve`")
    return 1 if problems else 0
