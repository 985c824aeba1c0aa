"""Client tokens: one per local app, so the sidecar knows who is calling and refuses everyone else.

``sidecar tokens create NAME`` prints a token (``sct_`` + 32 URL-safe characters) exactly once; the file
keeps only its SHA-256 hash with the name, creation time and expiry, in ``tokens.json`` in the data dir,
mode 0600. The app presents the token as the API key its SDK already sends.

Two kinds of entry:

- *persistent* ones (``tokens create``): while any exists, every request must carry a valid token;
- *ephemeral* ones (``sidecar exec``, the TUI, ``pause``/``resume``): short-lived, revoked when the program
  exits. They identify their client but do not by themselves switch enforcement on, so running
  ``sidecar exec -- agent`` does not suddenly lock out the user's other apps.

The running proxy reads the file through `TokenCache`, which re-reads it when it changes (one ``os.stat`` per
request; the file is parsed again only when its mtime, size or inode changed).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

PREFIX = "sct_"
FILENAME = "tokens.json"
RECHECK_SECONDS = 0.1
"""How stale the proxy's answer to "are tokens required?" may get for a request that carries no token: the first
token created by the CLI (a process that takes longer than this to start) is required within a tenth of a second.
Checking on every such request cost a failed ``os.stat`` each (2-3% of the proxy's CPU under load, per py-spy).
A request that does carry a token always sees the file as it is now, so a revocation is in force at once. The file
is re-read only when it changed."""
NAME_MAX = 64


class TokenError(ValueError):
    """A token operation the store cannot do (bad name, duplicate, unreadable file)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    token = PREFIX + secrets.token_urlsafe(24)  # 24 bytes -> exactly 32 URL-safe characters
    assert len(token) == len(PREFIX) + 32
    return token


def looks_like_token(value: str) -> bool:
    return value.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class TokenEntry:
    name: str
    hash: str
    created: float
    expires: float | None = None
    ephemeral: bool = False

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (now if now is not None else time.time()) >= self.expires

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "hash": self.hash, "created": self.created, "expires": self.expires,
                "ephemeral": self.ephemeral}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TokenEntry:
        return cls(str(raw["name"]), str(raw["hash"]), float(raw["created"]),
                   None if raw.get("expires") is None else float(raw["expires"]), bool(raw.get("ephemeral")))


def iso(ts: float | None) -> str:
    return "never" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX or any(c.isspace() or not c.isprintable() for c in name):
        raise TokenError(f"token name must be 1-{NAME_MAX} printable characters without spaces, got {name!r}")
    return name


def read_entries(path: Path) -> list[TokenEntry]:
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, orjson.JSONDecodeError) as exc:
        raise TokenError(f"cannot read the token file {path}: {exc}") from None
    try:
        return [TokenEntry.from_json(t) for t in raw.get("tokens", [])]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise TokenError(f"the token file {path} is malformed ({exc}); fix or delete it") from None


class TokenStore:
    """The token file, for the CLI: every change is a locked read-modify-write and an atomic replace."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir
        self.path = data_dir / FILENAME

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[TokenEntry]]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_fd = os.open(self.dir / (FILENAME + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                import fcntl

                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - Windows: no advisory lock; the replace is still atomic
                pass
            entries = read_entries(self.path)
            before = list(entries)
            yield entries
            now = time.time()
            # Ephemeral tokens whose program died without revoking them (kill -9) are dropped once expired.
            entries[:] = [e for e in entries if not (e.ephemeral and e.expired(now))]
            if entries != before:
                self._write(entries)
        finally:
            os.close(lock_fd)

    def _write(self, entries: list[TokenEntry]) -> None:
        data = orjson.dumps({"version": 1, "tokens": [e.to_json() for e in entries]}, option=orjson.OPT_INDENT_2)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tokens-", suffix=".tmp")  # created 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def create(self, name: str, ttl: float | None = None, *, ephemeral: bool = False) -> str:
        """A new token for ``name``; returned once, never stored. Persistent names are unique."""
        name = _check_name(name)
        if ttl is not None and ttl <= 0:
            raise TokenError("--ttl must be a positive number of seconds")
        token = new_token()
        now = time.time()
        with self._locked() as entries:
            if not ephemeral and any(e.name == name and not e.ephemeral for e in entries):
                raise TokenError(f"a token named {name!r} already exists; revoke it first "
                                 f"(`sidecar tokens revoke {name}`)")
            entries.append(TokenEntry(name, hash_token(token), now, None if ttl is None else now + ttl, ephemeral))
        return token

    def list(self) -> list[TokenEntry]:
        return read_entries(self.path)

    def revoke(self, name: str) -> int:
        """Revoke every token named ``name``; returns how many."""
        with self._locked() as entries:
            keep = [e for e in entries if e.name != name]
            count = len(entries) - len(keep)
            entries[:] = keep
        return count

    def revoke_token(self, token: str) -> bool:
        digest = hash_token(token)
        with self._locked() as entries:
            keep = [e for e in entries if e.hash != digest]
            found = len(keep) != len(entries)
            entries[:] = keep
        return found

    @contextlib.contextmanager
    def temporary(self, name: str, ttl: float = 12 * 3600) -> Iterator[str]:
        """An ephemeral token for the duration of a ``with`` block (revoked on any exit, Ctrl-C included)."""
        token = self.create(name, ttl, ephemeral=True)
        try:
            yield token
        finally:
            with contextlib.suppress(TokenError, OSError):
                self.revoke_token(token)


class TokenCache:
    """The running proxy's view of the token file: hash → entry, re-read when the file changes.

    A `os.stat` at most every `RECHECK_SECONDS` (and on an unknown ``sct_`` token) keeps it cheap; a
    file that cannot be read keeps the previous view and fails closed if none was ever read.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILENAME
        self._sig: tuple[int, int, int] | None = None
        self._by_hash: dict[str, TokenEntry] = {}
        self._persistent = False
        self._broken = False
        self._checked = 0.0
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
            sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            sig = None
        except OSError:
            return
        if sig == self._sig:
            return
        try:
            entries = read_entries(self.path) if sig is not None else []
        except TokenError:
            self._broken = self._sig is None and sig is not None  # never read it: fail closed
            return
        self._sig = sig
        self._broken = False
        self._by_hash = {e.hash: e for e in entries}
        self._persistent = any(not e.ephemeral for e in entries)

    @property
    def enforcing(self) -> bool:
        """Whether persistent tokens exist (or the file exists but is unreadable: fail closed)."""
        self.refresh()
        return self._persistent or self._broken

    def lookup(self, token: str) -> str | None:
        """The client name a valid token belongs to, else None (unknown, revoked or expired)."""
        digest = hash_token(token)
        self.refresh(force=True)  # maybe created or revoked a moment ago by the CLI
        entry = self._by_hash.get(digest)
        if entry is None or entry.expired():
            return None
        return entry.name
