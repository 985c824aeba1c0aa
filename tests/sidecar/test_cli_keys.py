"""``sidecar keys set|list|delete`` as a user runs them: the real CLI in a subprocess, the real Secret Service.

The secret_service tests need tests/run's private, unlocked GNOME Keyring (service ``llm-sidecar``,
username = provider id); the CLI subprocess and this test process share it over the private D-Bus session,
so a key the CLI stores is readable here with ``keyring.get_password`` and by ``secret-tool``.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import subprocess
import sys
import termios
import time
from pathlib import Path

import keyring
import pytest

from sidecar.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "llm-sidecar"
KEY = "sk-test-cli-0123456789abcdefXYZ"
KEY2 = "sk-ant-test-cli-9876543210zyx"


def sidecar(*args: str, stdin: str | None = "", env: dict[str, str] | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the real CLI with stdin piped (never a TTY here)."""
    return subprocess.run([sys.executable, "-m", "sidecar", *args], cwd=ROOT, input=stdin, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def secret_tool_lookup(provider: str) -> str | None:
    proc = subprocess.run(["secret-tool", "lookup", "service", SERVICE, "username", provider],
                          capture_output=True, text=True, timeout=10)
    return proc.stdout if proc.returncode == 0 else None


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


# --- python -m sidecar -----------------------------------------------------------------------

def test_python_dash_m_sidecar_works():
    proc = sidecar("--version")
    assert proc.returncode == 0
    assert "llm-sidecar" in proc.stdout


# --- no key on argv, ever --------------------------------------------------------------------

KEYISH = ("key", "secret", "token", "password", "value", "api")


def test_keys_set_help_has_no_option_taking_a_key():
    proc = sidecar("keys", "set", "--help")
    assert proc.returncode == 0
    assert "provider" in proc.stdout
    for word in KEYISH:
        assert f"--{word}" not in proc.stdout
        assert f"--{word}-" not in proc.stdout


def _subparser(parser, *names):
    for name in names:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("command", [("keys", "set"), ("keys", "delete"), ("keys", "list")])
def test_keys_parsers_accept_no_secret(command):
    parser = _subparser(build_parser(), *command)
    taking_values = []
    for action in parser._actions:
        if action.option_strings and action.nargs != 0:
            taking_values.append(action.dest)
        if not action.option_strings:
            taking_values.append(action.dest)
    # Only options that can never be a key: the config file, host, port and (for set/delete) the provider id.
    assert set(taking_values) <= {"config", "host", "port", "provider"}, taking_values


# --- the real Secret Service -----------------------------------------------------------------

@pytest.mark.secret_service
def test_set_list_delete_roundtrip(secret_service):
    proc = sidecar("keys", "set", "openai", stdin=KEY + "\n")  # trailing newline, as `echo` would add
    assert proc.returncode == 0, proc.stderr
    assert "stored" in proc.stdout and "openai" in proc.stdout
    assert KEY not in proc.stdout + proc.stderr
    # the same Secret Service, seen from this process and from libsecret's own tool
    assert keyring.get_password(SERVICE, "openai") == KEY
    if shutil.which("secret-tool"):
        assert secret_tool_lookup("openai") == KEY

    proc = sidecar("keys", "list")
    assert proc.returncode == 0, proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    assert KEY[:12] not in proc.stdout  # not even a useful prefix of it
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert proc.stdout.splitlines()[0].split() == ["PROVIDER", "ADAPTER", "KEY"]
    assert f"({len(KEY)} chars)" in rows["openai"]
    assert rows["anthropic"].split()[-1] == "-"
    assert "no key needed" in rows["ollama"]
    for pid in ("openai", "anthropic", "gemini", "groq", "mistral", "deepseek", "openrouter", "together", "xai"):
        assert pid in rows

    proc = sidecar("keys", "delete", "openai")
    assert proc.returncode == 0, proc.stderr
    assert "deleted" in proc.stdout
    assert keyring.get_password(SERVICE, "openai") is None
    if shutil.which("secret-tool"):
        assert secret_tool_lookup("openai") is None
    proc = sidecar("keys", "list")
    assert f"({len(KEY)} chars)" not in proc.stdout


@pytest.mark.secret_service
def test_set_replaces_an_existing_key(secret_service):
    assert sidecar("keys", "set", "anthropic", stdin="sk-ant-old-key-000000").returncode == 0
    assert sidecar("keys", "set", "anthropic", stdin=KEY2).returncode == 0
    assert keyring.get_password(SERVICE, "anthropic") == KEY2


@pytest.mark.secret_service
def test_delete_missing_key_fails_clearly(secret_service):
    assert keyring.get_password(SERVICE, "groq") is None
    proc = sidecar("keys", "delete", "groq")
    assert proc.returncode != 0
    assert "no groq key" in proc.stderr
    assert_no_traceback(proc)


@pytest.mark.secret_service
@pytest.mark.parametrize("stdin", ["", "\n", "   \n\t\n"])
def test_set_with_empty_stdin_stores_nothing(secret_service, stdin):
    proc = sidecar("keys", "set", "openai", stdin=stdin)
    assert proc.returncode == 2
    assert "no key" in proc.stderr and "nothing stored" in proc.stderr
    assert keyring.get_password(SERVICE, "openai") is None
    assert_no_traceback(proc)


@pytest.mark.secret_service
def test_set_with_two_words_stores_nothing(secret_service):
    proc = sidecar("keys", "set", "openai", stdin="sk-one sk-two\n")
    assert proc.returncode == 2
    assert "whitespace" in proc.stderr
    assert "sk-one" not in proc.stderr
    assert keyring.get_password(SERVICE, "openai") is None


@pytest.mark.secret_service
def test_set_unknown_provider_names_the_configured_ones(secret_service):
    proc = sidecar("keys", "set", "opneai", stdin=KEY)
    assert proc.returncode == 2
    assert "unknown provider" in proc.stderr and "opneai" in proc.stderr
    for pid in ("openai", "anthropic", "gemini", "groq", "ollama"):
        assert pid in proc.stderr
    assert KEY not in proc.stderr
    assert keyring.get_password(SERVICE, "opneai") is None
    assert_no_traceback(proc)


@pytest.mark.secret_service
def test_key_on_argv_is_refused_and_not_stored(secret_service):
    proc = sidecar("keys", "set", "openai", KEY, stdin="")
    assert proc.returncode == 2
    assert keyring.get_password(SERVICE, "openai") is None


@pytest.mark.secret_service
def test_provider_from_a_config_file(secret_service, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[providers.canary]\nadapter = "anthropic"\nbase_url = "http://127.0.0.1:9"\n')
    assert sidecar("keys", "set", "canary", stdin=KEY).returncode == 2  # not configured without the file
    proc = sidecar("keys", "set", "canary", "--config", str(cfg), stdin=KEY)
    assert proc.returncode == 0, proc.stderr
    assert keyring.get_password(SERVICE, "canary") == KEY
    proc = sidecar("keys", "list", "--config", str(cfg))
    line = next(line for line in proc.stdout.splitlines() if line.startswith("canary"))
    assert "anthropic" in line and f"({len(KEY)} chars)" in line and KEY not in proc.stdout


@pytest.mark.secret_service
@pytest.mark.skipif(not shutil.which("secret-tool"), reason="secret-tool (libsecret-tools) is not installed")
def test_key_stored_by_secret_tool_is_listed(secret_service):
    subprocess.run(["secret-tool", "store", "--label", "llm-sidecar gemini", "service", SERVICE, "username", "gemini"],
                   input="AIza-from-secret-tool-0001", text=True, check=True, timeout=10)
    proc = sidecar("keys", "list")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("gemini"))
    assert "(26 chars)" in line and "AIza-from-secret-tool-0001" not in proc.stdout


@pytest.mark.secret_service
def test_short_key_mask_reveals_no_prefix(secret_service):
    assert sidecar("keys", "set", "groq", stdin="gsk_short").returncode == 0
    proc = sidecar("keys", "list")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("groq"))
    assert "(9 chars)" in line and "gsk" not in line


def run_in_pty(args: list[str], answer: str, *, timeout: float = 20) -> tuple[int, bytes]:
    """Run `args` with a pseudo-terminal as its controlling terminal and stdin/stdout/stderr; type `answer`
    at the hidden prompt. Returns (exit code, everything the terminal showed)."""
    master, slave = pty.openpty()

    def make_controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(args, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=make_controlling_tty, close_fds=True)
    os.close(slave)
    shown = b""
    typed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                if not typed and b"(input hidden)" in shown:
                    os.write(master, answer.encode() + b"\n")
                    typed = True
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=max(deadline - time.monotonic(), 1)), shown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@pytest.mark.secret_service
def test_set_from_a_terminal_prompts_without_echo(secret_service):
    code, shown = run_in_pty([sys.executable, "-m", "sidecar", "keys", "set", "openai"], KEY)
    assert b"openai key (input hidden):" in shown, shown
    assert code == 0, shown
    assert KEY.encode() not in shown  # the terminal never echoed it
    assert b"stored the openai key" in shown
    assert keyring.get_password(SERVICE, "openai") == KEY


# --- no usable keyring -----------------------------------------------------------------------

FAIL_BACKEND = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


@pytest.mark.parametrize("args, stdin", [
    (("keys", "list"), ""),
    (("keys", "set", "openai"), KEY),
    (("keys", "delete", "openai"), ""),
])
def test_no_keyring_backend_is_explained(args, stdin):
    proc = sidecar(*args, stdin=stdin, env=FAIL_BACKEND)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert_no_traceback(proc)
    err = proc.stderr.lower()
    assert "keyring" in err
    assert "no usable keyring backend" in err
    # how to fix it: a Secret Service to start, or the backend to pick, or doctor
    assert "secret service" in err and "python_keyring_backend" in err
    assert KEY not in proc.stdout + proc.stderr
