"""Provider keys: held by the OS keyring, cached briefly in memory, never written anywhere else.

Keyring service ``llm-sidecar``, username = provider id. Backend selection is keyring's own
(``PYTHON_KEYRING_BACKEND``, keyringrc), so CI can use a real Secret Service or a file backend with no
code change. Keyring calls block (Secret Service is a D-Bus round trip, ~10 ms; macOS may prompt), so the
proxy reads keys through `KeyCache.get`, which runs the lookup in a thread and remembers the answer for
a short time: the hot path pays for the keyring at most once per provider per TTL.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

import keyring
import keyring.errors

from sidecar.keyring_help import STORES_NOTHING, KeyringProblem, backend_problem, diagnose

SERVICE = "llm-sidecar"


class KeyStoreError(RuntimeError):
    """The keyring backend is missing, locked or failing. The message says how to fix it on this platform."""

    def __init__(self, message: str, problem: KeyringProblem | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        """What kind of trouble it is (sidecar/keyring_help.py), for ``sidecar doctor``; None if unknown."""


class KeyStore(Protocol):
    def get(self, provider: str) -> str | None: ...
    def set(self, provider: str, secret: str) -> None: ...
    def delete(self, provider: str) -> bool: ...


def _explain(problem: KeyringProblem) -> KeyStoreError:
    # Never chained to the backend's exception: its text can carry item attributes.
    return KeyStoreError(problem.message(), problem)


class KeyringStore:
    """The OS keyring through the `keyring` library.

    Every failure becomes a `KeyStoreError` with a one-paragraph explanation: keyring's own errors, and the
    ones some backends raise past it (D-Bus errors, ``pywintypes.error``), so no caller ever sees a traceback."""

    def get(self, provider: str) -> str | None:
        try:
            return keyring.get_password(SERVICE, provider) or None
        except Exception as exc:
            raise _explain(diagnose(exc)) from None

    def set(self, provider: str, secret: str) -> None:
        problem = backend_problem()
        if problem is not None and problem.kind == STORES_NOTHING:
            raise _explain(problem)  # `keys set` must not report success for a key that went nowhere
        try:
            keyring.set_password(SERVICE, provider, secret)
        except Exception as exc:
            raise _explain(diagnose(exc)) from None

    def delete(self, provider: str) -> bool:
        try:
            keyring.delete_password(SERVICE, provider)
        except keyring.errors.PasswordDeleteError:
            return False
        except Exception as exc:
            raise _explain(diagnose(exc)) from None
        return True


class MemoryKeyStore:
    """Keys held in this process only: the demo's simulated providers and unit tests use it."""

    def __init__(self, keys: dict[str, str] | None = None) -> None:
        self._keys = dict(keys or {})

    def get(self, provider: str) -> str | None:
        return self._keys.get(provider)

    def set(self, provider: str, secret: str) -> None:
        self._keys[provider] = secret

    def delete(self, provider: str) -> bool:
        return self._keys.pop(provider, None) is not None


@dataclass(slots=True)
class _Cached:
    value: str | None
    expires: float
    error: KeyStoreError | None = None


ERROR_TTL = 5.0
"""Seconds a keyring failure is remembered. A locked Secret Service may raise an unlock prompt per lookup, and the
TUI polls /health (one lookup per provider) every few seconds: without this, a locked keyring means a storm of
prompts and D-Bus round trips. After unlocking, requests work again within this time."""


class KeyCache:
    """Async, short-lived cache in front of a `KeyStore`.

    A key set or deleted with ``sidecar keys`` while the proxy runs is seen within ``ttl`` seconds;
    `invalidate` drops a provider at once (e.g. after the provider answered 401).
    """

    def __init__(self, store: KeyStore, *, ttl: float = 30.0) -> None:
        self.store = store
        self.ttl = ttl
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def fresh(self, provider: str) -> str | None:
        """The cached key when there is an unexpired one, else None (then `get`): no coroutine for the common case,
        which is every request after the first few seconds."""
        hit = self._cache.get(provider)
        if hit is not None and hit.error is None and hit.value and hit.expires > time.monotonic():
            return hit.value
        return None

    async def get(self, provider: str) -> str | None:
        hit = self._cache.get(provider)
        now = time.monotonic()
        if hit is None or hit.expires <= now:
            lock = self._locks.setdefault(provider, asyncio.Lock())
            async with lock:  # one keyring lookup per provider, however many requests arrive at once
                hit = self._cache.get(provider)
                if hit is None or hit.expires <= time.monotonic():
                    try:
                        hit = _Cached(await asyncio.to_thread(self.store.get, provider), time.monotonic() + self.ttl)
                    except KeyStoreError as exc:
                        hit = _Cached(None, time.monotonic() + ERROR_TTL, exc)
                    self._cache[provider] = hit
        if hit.error is not None:  # a fresh exception each time: re-raising one would grow its traceback
            raise KeyStoreError(str(hit.error), hit.error.problem)
        return hit.value

    def invalidate(self, provider: str | None = None) -> None:
        if provider is None:
            self._cache.clear()
        else:
            self._cache.pop(provider, None)

    def known_secrets(self) -> list[str]:
        """Every key currently in memory, so outgoing text can be scrubbed of them."""
        return [c.value for c in self._cache.values() if c.value]


def mask(secret: str) -> str:
    """A hint that tells keys apart without revealing them: prefix family and length only."""
    head = secret[:3] if len(secret) >= 12 else ""
    return f"{head}…({len(secret)} chars)"
