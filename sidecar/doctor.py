"""``sidecar doctor``: what is set up, what is missing, and the fix for each — in plain words.

The keyring gets the most care: it is what fails on a fresh Linux box, over SSH, in a container or with a
locked login keychain, and keyring's own exceptions say little. The checks go from the backend keyring
chose (none, null, an empty chain), to one real lookup per provider (locked, cannot open, failed); each
problem prints one paragraph with the fix for this platform (sidecar/keyring_help.py).
"""

from __future__ import annotations

import platform
import sys
import urllib.request
from collections.abc import Callable

import keyring
import orjson

from sidecar import __version__
from sidecar.config import Config
from sidecar.keyring_help import STORES_NOTHING, backend_name, backend_problem, fix_for
from sidecar.keys import KeyringStore, KeyStoreError

Line = Callable[..., None]


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
    check_keyring(config, line)
    _check_data_dir(config, line)
    _check_proxy(config, line)
    return 1 if problems else 0


def check_keyring(config: Config, line: Line, *, system: str | None = None) -> None:
    """The keyring backend, then each keyed provider's lookup; every problem with its fix for ``system``."""
    backend = keyring.get_keyring()
    name = backend_name(backend)
    chained = getattr(backend, "backends", None)
    shown = name + (f" over {', '.join(backend_name(b) for b in chained)}" if chained else "")
    problem = backend_problem(backend)
    if problem is not None:
        line(False, "keyring", _paragraph(problem.summary, fix_for(problem.kind, system), name))
        if problem.kind != STORES_NOTHING:
            return  # every lookup would fail the same way
    store = KeyringStore()
    try:
        keys = {pid: bool(store.get(pid)) for pid, p in config.providers.items() if p.needs_key}
    except KeyStoreError as exc:
        kind = exc.problem.kind if exc.problem else None
        summary = exc.problem.summary if exc.problem else str(exc)
        line(False, "keyring", _paragraph(summary, fix_for(kind, system) if kind else "", name))
        return
    if problem is None:
        insecure = "keyrings.alt" in name and "Plaintext" in name
        line(None if insecure else True, "keyring",
             shown + ("; keys are stored unencrypted in a file" if insecure else ""))
    have = sorted(p for p, ok in keys.items() if ok)
    line(bool(have) or None, "provider keys",
         ", ".join(have) if have else "none yet: printf %s \"$KEY\" | sidecar keys set openai")


def _paragraph(summary: str, fix: str, backend: str) -> str:
    return f"{summary} (backend {backend}).\n       {fix}"


def _check_data_dir(config: Config, line: Line) -> None:
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        probe = config.data_dir / ".doctor-probe"
        probe.write_bytes(b"")
        probe.unlink()
        line(True, "data dir", str(config.data_dir))
    except OSError as exc:
        line(False, "data dir", f"{config.data_dir} is not writable: {exc.strerror}")


def _check_proxy(config: Config, line: Line) -> None:
    url = f"http://{config.host}:{config.port}/_sidecar/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - a loopback URL we built
            health = orjson.loads(resp.read())
    except OSError:
        line(None, "proxy", f"not running on {config.host}:{config.port}; start it with `sidecar serve`")
        return
    line(True, "proxy", f"running at {health.get('listen') or url} (version {health.get('version')})")
    store = health.get("store_health")
    if isinstance(store, dict) and store.get("writable") is False:
        line(False, "request log", f"not writable since {store.get('since')} ({store.get('last_error')}); "
                                   f"{store.get('backlog')} records held in memory, {store.get('dropped')} dropped. "
                                   "Free disk space or fix the data dir's permissions; the backlog is written "
                                   "as soon as it can be")
