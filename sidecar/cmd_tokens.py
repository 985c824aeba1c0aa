"""``sidecar tokens create|list|revoke`` and ``sidecar exec [--client NAME] -- COMMAND ...``."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from sidecar.config import Config
from sidecar.shellenv import env_vars
from sidecar.tokens import TokenError, TokenStore, iso


def run_tokens(args: argparse.Namespace, config: Config) -> int:
    store = TokenStore(config.data_dir)
    try:
        if args.tokens_command == "create":
            token = store.create(args.name, args.ttl)
            print(token)
            expiry = "never expires" if args.ttl is None else f"expires in {args.ttl:g} s"
            print(f"token for client {args.name!r} ({expiry}); it is shown only this once — use it as the "
                  "API key of that app. Once any token exists, the sidecar refuses requests without one.",
                  file=sys.stderr)
            return 0
        if args.tokens_command == "list":
            entries = store.list()
            if not entries:
                print("no client tokens (the sidecar accepts any local caller; see `sidecar tokens create`)")
                return 0
            print(f"{'NAME':24} {'CREATED (UTC)':26} {'EXPIRES (UTC)':26} KIND")
            for e in sorted(entries, key=lambda e: (e.name, e.created)):
                expires = iso(e.expires) + (" (expired)" if e.expired() else "")
                print(f"{e.name:24} {iso(e.created):26} {expires:26} {'exec' if e.ephemeral else 'token'}")
            return 0
        count = store.revoke(args.name)
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the token file in {config.data_dir}: {exc}", file=sys.stderr)
        return 1
    if not count:
        print(f"no token named {args.name!r}", file=sys.stderr)
        return 1
    print(f"revoked {count} token(s) named {args.name!r}; the running sidecar refuses them within a second")
    return 0


def run_exec(cmd: list[str], *, client: str | None, ttl: float, config: Config, base_url: str) -> int:
    """Run ``cmd`` with the SDK variables and a fresh client token in its environment; revoke it afterwards."""
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        print("usage: sidecar exec [--client NAME] -- COMMAND [ARGS ...]", file=sys.stderr)
        return 2
    name = client or Path(cmd[0]).name or "exec"
    store = TokenStore(config.data_dir)
    try:
        scope = store.temporary(name, ttl=ttl)
        token = scope.__enter__()
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the token file in {config.data_dir}: {exc}", file=sys.stderr)
        return 1
    env = {**os.environ, **env_vars(base_url, token=token), "SIDECAR_TOKEN": token, "SIDECAR_CLIENT": name}
    try:
        return _run_child(cmd, env)
    finally:
        scope.__exit__(None, None, None)


def _run_child(cmd: list[str], env: dict[str, str]) -> int:
    """Like a shell: Ctrl-C goes to the child (same process group) while we wait for it; SIGTERM is passed on."""
    try:
        child = subprocess.Popen(cmd, env=env)  # noqa: S603 - the user's own command, by design
    except FileNotFoundError:
        print(f"sidecar exec: command not found: {cmd[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"sidecar exec: permission denied: {cmd[0]}", file=sys.stderr)
        return 126
    previous = {}

    def forward(signum: int, _frame: object) -> None:
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)):
        if sig is None:
            continue
        # SIGINT from the terminal reaches the child directly; don't send it twice.
        previous[sig] = signal.signal(sig, signal.SIG_IGN if sig == signal.SIGINT else forward)
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code
