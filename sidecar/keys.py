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

SERVICE = "llm-sidecar"


class KeyStoreError(RuntimeError):
    """The keyring backend is missing, locked or failing. The message says how to fix it."""


class KeyStore(Protocol):
    def get(self, provider: str) -> str | None: ...
    def set(self, provider: str, secret: str) -> None: ...
    def delete(self, provider: str) -> bool: ...


def _explain(exc: Exception) -> KeyStoreError:
    backend = type(keyring.get_keyring()).__module__ + "." + type(keyring.get_keyring()).__name__
    if isinstance(exc, keyring.errors.NoKeyringError):
        hint = (
            "no usable keyring backend was found. On Linux start a Secret Service "
            "(GNOME Keyring or KWallet, or KeePassXC with its Secret Service integration); on macOS and "
            "Windows the system keychain is used. To pick a backend explicitly set PYTHON_KEYRING_BACKEND. "
            "`sidecar doctor` shows what keyring sees."
        )
    elif isinstance(exc, keyring.errors.KeyringLocked):
        hint = "the keyring is locked; unlock it (log in to your desktop session or unlock it in your keyring app)."
    elif isinstance(exc, keyring.errors.InitError):
        hint = "the keyring could not be opened (no unlock prompt could be shown?); unlock it from your desktop session."
    else:
        hint = f"the keyring backend failed ({type(exc).__name__})."
    # Deliberately not chaining `exc`: backend errors can carry attribute values in their text.
    return KeyStoreError(f"keyring ({backend}): {hint}")


class KeyringStore:
    """The OS keyring through the `keyring` library."""

    def get(self, provider: str) -> str | None:
        try:
            return keyring.get_password(SERVICE, provider) or None
        except keyring.errors.KeyringError as exc:
            raise _explain(exc) from None

    def set(self, provider: str, secret: str) -> None:
        try:
            keyring.set_password(SERVICE, provider, secret)
        except keyring.errors.KeyringError as exc:
            raise _explain(exc) from None

    def delete(self, provider: str) -> bool:
        try:
            keyring.delete_password(SERVICE, provider)
        except keyring.errors.PasswordDeleteError:
            return False
        except keyring.errors.KeyringError as exc:
            raise _explain(exc) from None
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

    async def get(self, provider: str) -> str | None:
        hit = self._cache.get(provider)
        now = time.monotonic()
        if hit is not None and hit.expires > now:
            return hit.value
        lock = self._locks.setdefault(provider, asyncio.Lock())
        async with lock:  # one keyring lookup per provider, however many requests arrive at once
            hit = self._cache.get(provider)
            if hit is not None and hit.expires > time.monotonic():
                return hit.value
            value = await asyncio.to_thread(self.store.get, provider)
            self._cache[provider] = _Cached(value, time.monotonic() + self.ttl)
            return value

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
