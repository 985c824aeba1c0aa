"""``sidecar keys set|list|delete PROVIDER``: provider keys in the OS keyring.

Secrets are read from standard input (``printf %s "$KEY" | sidecar keys set openai``) or a hidden
prompt when stdin is a terminal — never from argv, where other local users can read them in ``ps``.
"""

from __future__ import annotations

import getpass
import sys

from sidecar.config import Config
from sidecar.keys import KeyStore, KeyStoreError, mask


def read_secret(provider: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"{provider} key (input hidden): ")
    return sys.stdin.read()


def keys_set(config: Config, store: KeyStore, provider: str) -> int:
    if provider not in config.providers:
        print(f"unknown provider {provider!r}; configured: {', '.join(sorted(config.providers))}", file=sys.stderr)
        return 2
    if not config.providers[provider].needs_key:
        print(f"note: {provider} is configured with key = false; the key is stored but not sent", file=sys.stderr)
    secret = read_secret(provider).strip()
    if not secret:
        print("no key given on stdin; nothing stored", file=sys.stderr)
        return 2
    if any(c.isspace() for c in secret):
        print("the key contains whitespace; pass exactly one key", file=sys.stderr)
        return 2
    try:
        store.set(provider, secret)
    except KeyStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"stored the {provider} key in the OS keyring ({mask(secret)})")
    return 0


def keys_list(config: Config, store: KeyStore) -> int:
    rows = []
    try:
        for pid, provider in sorted(config.providers.items()):
            secret = store.get(pid)
            if secret:
                state = mask(secret)
            else:
                state = "no key needed" if not provider.needs_key else "-"
            rows.append((pid, provider.adapter, state))
    except KeyStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    width = max(len(r[0]) for r in rows)
    print(f"{'PROVIDER':<{width}}  {'ADAPTER':<9}  KEY")
    for pid, adapter, state in rows:
        print(f"{pid:<{width}}  {adapter:<9}  {state}")
    return 0


def keys_delete(store: KeyStore, provider: str) -> int:
    try:
        deleted = store.delete(provider)
    except KeyStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not deleted:
        print(f"no {provider} key in the keyring", file=sys.stderr)
        return 1
    print(f"deleted the {provider} key from the OS keyring")
    return 0
