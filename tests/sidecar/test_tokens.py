"""`sidecar tokens`, `sidecar exec` and the bind refusal, as real subprocesses; plus the token store itself."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.tokens import FILENAME, PREFIX, TokenCache, TokenError, TokenStore, hash_token

ROOT = Path(__file__).resolve().parents[2]


def cli(tmp: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "cfg")}
    env.pop("SIDECAR_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "sidecar", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def token_file(tmp: Path) -> Path:
    return tmp / "data" / "llm-sidecar" / FILENAME


def test_tokens_cli_create_list_revoke(tmp_path: Path) -> None:
    made = cli(tmp_path, "tokens", "create", "my-app")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith(PREFIX) and len(token) == len(PREFIX) + 32
    assert "only this once" in made.stderr

    path = token_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert token not in text and token[len(PREFIX):] not in text
    assert hash_token(token) in text

    listed = cli(tmp_path, "tokens", "list")
    assert listed.returncode == 0 and "my-app" in listed.stdout
    assert token not in listed.stdout and hash_token(token) not in listed.stdout

    dup = cli(tmp_path, "tokens", "create", "my-app")
    assert dup.returncode != 0 and "already exists" in dup.stderr

    ttl = cli(tmp_path, "tokens", "create", "brief", "--ttl", "60")
    assert ttl.returncode == 0
    assert "brief" in cli(tmp_path, "tokens", "list").stdout

    revoked = cli(tmp_path, "tokens", "revoke", "my-app")
    assert revoked.returncode == 0
    assert "my-app" not in cli(tmp_path, "tokens", "list").stdout
    assert cli(tmp_path, "tokens", "revoke", "my-app").returncode == 1
    assert cli(tmp_path, "tokens", "create", "bad name").returncode == 2


def test_exec_sets_environment_and_revokes_afterwards(tmp_path: Path) -> None:
    script = ("import os, json; print(json.dumps({k: os.environ.get(k) for k in ("
              "'OPENAI_BASE_URL','OPENAI_API_KEY','ANTHROPIC_BASE_URL','ANTHROPIC_API_KEY',"
              "'GOOGLE_GEMINI_BASE_URL','GEMINI_API_KEY','SIDECAR_CLIENT')}))")
    done = cli(tmp_path, "--port", "9911", "exec", "--client", "agent-x", "--", sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    import json

    seen = json.loads(done.stdout)
    token = seen["OPENAI_API_KEY"]
    assert token.startswith(PREFIX)
    assert seen["ANTHROPIC_API_KEY"] == token and seen["GEMINI_API_KEY"] == token
    assert seen["OPENAI_BASE_URL"] == "http://127.0.0.1:9911/v1"
    assert seen["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9911"
    assert seen["SIDECAR_CLIENT"] == "agent-x"
    # revoked: not in the file any more, and the proxy's view refuses it
    assert hash_token(token) not in token_file(tmp_path).read_text()
    assert TokenCache(token_file(tmp_path).parent).lookup(token) is None
    assert token not in os.environ.get("OPENAI_API_KEY", "")  # nothing leaked into this (parent) shell


def test_exec_passes_exit_code_and_defaults_client_to_basename(tmp_path: Path) -> None:
    script = "import os, sys; print(os.environ['SIDECAR_CLIENT']); sys.exit(7)"
    done = cli(tmp_path, "exec", "--", sys.executable, "-c", script)
    assert done.returncode == 7
    assert done.stdout.strip() == Path(sys.executable).name
    missing = cli(tmp_path, "exec", "--", "no-such-command-xyz")
    assert missing.returncode == 127 and "not found" in missing.stderr
    assert cli(tmp_path, "exec").returncode == 2


def test_exec_revokes_on_interrupt(tmp_path: Path) -> None:
    """SIGINT to the sidecar process (as from Ctrl-C in the terminal): the child ends, the token goes."""
    import signal
    import time

    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    script = "import time; print('ready', flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-m", "sidecar", "exec", "--client", "sleepy", "--", sys.executable,
                             "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert "sleepy" in token_file(tmp_path).read_text()
        os.killpg(proc.pid, signal.SIGINT)  # the whole foreground group, like a terminal's Ctrl-C
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    deadline = time.monotonic() + 5
    while "sleepy" in token_file(tmp_path).read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "sleepy" not in token_file(tmp_path).read_text()


def test_serve_refuses_remote_bind(tmp_path: Path) -> None:
    plain = cli(tmp_path, "serve", "--host", "0.0.0.0", "--port", "0", timeout=15)
    assert plain.returncode != 0
    assert "--allow-remote" in plain.stderr and "0.0.0.0" in plain.stderr
    no_token = cli(tmp_path, "serve", "--host", "0.0.0.0", "--port", "0", "--allow-remote", timeout=15)
    assert no_token.returncode != 0 and "tokens create" in no_token.stderr
    up = cli(tmp_path, "up", "--host", "192.0.2.1", timeout=15)
    assert up.returncode != 0 and "--allow-remote" in up.stderr


def test_store_refuses_bad_input_and_prunes_dead_exec_tokens(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    with pytest.raises(TokenError):
        store.create("x", ttl=0)
    dead = store.create("crashed", ttl=0.001, ephemeral=True)  # its program died without revoking it
    import time

    time.sleep(0.01)
    store.create("alive")
    names = [e.name for e in store.list()]
    assert names == ["alive"]
    assert TokenCache(tmp_path).lookup(dead) is None
    path = tmp_path / FILENAME
    path.write_text("{not json")
    with pytest.raises(TokenError):
        store.list()
    assert TokenCache(tmp_path).enforcing  # an unreadable token file fails closed
