"""A keyring backend for benchmarks only: every provider's key is a fixed dummy string.

``bench/run.py`` starts the sidecar with ``PYTHON_KEYRING_BACKEND=bench_keyring.BenchKeyring`` and
``bench/`` on ``PYTHONPATH``, so the real ``KeyringStore`` code path runs (thread lookup, in-memory cache)
without touching the user's keyring, writing a key file, or installing a backend package. The fake upstream
accepts any key.
"""

from __future__ import annotations

import keyring.backend
import keyring.errors


class BenchKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        return f"sk-bench-{username}-0123456789" if service == "llm-sidecar" else None

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("the benchmark keyring is read-only")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.PasswordDeleteError("the benchmark keyring is read-only")
