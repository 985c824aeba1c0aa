"""``sidecar env``: shell lines for every supported shell, and bash really evaluating them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.shellenv import PLACEHOLDER_KEY, SHELLS, env_vars, guess_shell, render

ROOT = Path(__file__).resolve().parents[2]
VARS = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY",
        "GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY")


def sidecar_env(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "sidecar", "env", *args], cwd=ROOT, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=30, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def eval_in(shell: str, script: str) -> dict[str, str]:
    """Evaluate `script` in a clean `shell -c` and read the variables back."""
    probe = 'eval "$1"; ' + "; ".join(f'printf "%s=%s\\n" {v} "${v}"' for v in VARS)
    proc = subprocess.run([shell, "-c", probe, "sh", script], capture_output=True, text=True, timeout=10,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return dict(line.split("=", 1) for line in proc.stdout.splitlines())


def test_bash_output_evaluates_in_bash():
    out = sidecar_env("--shell", "bash")
    got = eval_in("bash", out)
    assert got == {
        "OPENAI_BASE_URL": "http://127.0.0.1:8787/v1",
        "OPENAI_API_KEY": PLACEHOLDER_KEY,
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:8787",
        "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
        "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:8787",
        "GEMINI_API_KEY": PLACEHOLDER_KEY,
    }
    assert got["OPENAI_BASE_URL"].endswith("/v1")
    assert not got["ANTHROPIC_BASE_URL"].endswith("/v1") and not got["GOOGLE_GEMINI_BASE_URL"].endswith("/v1")


def test_variables_are_exported_to_child_processes():
    out = sidecar_env("--shell", "bash")
    proc = subprocess.run(["bash", "-c", 'eval "$1"; env', "sh", out], capture_output=True, text=True, timeout=10,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    child = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    for name in VARS:
        assert name in child, name


def test_port_is_reflected():
    got = eval_in("bash", sidecar_env("--shell", "bash", "--port", "9999"))
    assert got["OPENAI_BASE_URL"] == "http://127.0.0.1:9999/v1"
    assert got["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9999"
    assert got["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:9999"
    for shell in SHELLS:
        out = sidecar_env("--shell", shell, "--port", "9999")
        assert "127.0.0.1:9999" in out and "8787" not in out, shell


def test_global_port_before_the_command_is_reflected():
    out = sidecar_env_global("--port", "9999")
    assert "127.0.0.1:9999/v1" in out


def sidecar_env_global(*global_args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "sidecar", *global_args, "env", "--shell", "bash"], cwd=ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_wildcard_and_ipv6_hosts():
    got = eval_in("bash", sidecar_env("--shell", "bash", "--host", "0.0.0.0", "--port", "8788"))
    assert got["OPENAI_BASE_URL"] == "http://127.0.0.1:8788/v1"  # 0.0.0.0 is not somewhere to connect to
    got = eval_in("bash", sidecar_env("--shell", "bash", "--host", "::1"))
    assert got["OPENAI_BASE_URL"] == "http://[::1]:8787/v1"
    assert got["ANTHROPIC_BASE_URL"] == "http://[::1]:8787"


def test_port_from_config_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nport = 9191\n")
    got = eval_in("bash", sidecar_env("--shell", "bash", "--config", str(cfg)))
    assert got["OPENAI_BASE_URL"] == "http://127.0.0.1:9191/v1"


def test_zsh_output_is_posix_and_evaluates():
    out = sidecar_env("--shell", "zsh")
    assert out == sidecar_env("--shell", "bash")
    assert out.splitlines() == [f"export {name}='{value}'" for name, value in
                                env_vars("http://127.0.0.1:8787").items()]
    shell = shutil.which("zsh") or "sh"  # zsh when installed, else POSIX sh (dash) reads the same syntax
    assert eval_in(shell, out)["OPENAI_BASE_URL"] == "http://127.0.0.1:8787/v1"


def test_fish_output():
    out = sidecar_env("--shell", "fish")
    lines = out.splitlines()
    assert lines == [f"set -gx {name} '{value}';" for name, value in env_vars("http://127.0.0.1:8787").items()]
    assert "set -gx OPENAI_BASE_URL 'http://127.0.0.1:8787/v1';" in lines
    assert "set -gx OPENAI_API_KEY 'sidecar';" in lines
    assert not any(line.startswith("export ") for line in lines)
    fish = shutil.which("fish")
    if fish:
        proc = subprocess.run([fish, "-c", out + "; echo $OPENAI_BASE_URL"], capture_output=True, text=True,
                              timeout=10)
        assert proc.stdout.strip() == "http://127.0.0.1:8787/v1"


def test_powershell_output():
    out = sidecar_env("--shell", "powershell")
    lines = out.splitlines()
    assert lines == [f"$Env:{name} = '{value}'" for name, value in env_vars("http://127.0.0.1:8787").items()]
    assert "$Env:ANTHROPIC_BASE_URL = 'http://127.0.0.1:8787'" in lines
    assert "$Env:GEMINI_API_KEY = 'sidecar'" in lines
    pwsh = shutil.which("pwsh")
    if pwsh:
        proc = subprocess.run([pwsh, "-NoProfile", "-Command", out + "\nWrite-Output $Env:OPENAI_BASE_URL"],
                              capture_output=True, text=True, timeout=30)
        assert proc.stdout.strip() == "http://127.0.0.1:8787/v1"


def test_every_shell_sets_every_variable_and_only_placeholders():
    for shell in SHELLS:
        out = sidecar_env("--shell", shell)
        for name in VARS:
            assert name in out, (shell, name)
        assert "sk-" not in out


def test_shell_defaults_from_SHELL():
    assert sidecar_env(env={"SHELL": "/usr/bin/fish"}).startswith("set -gx ")
    assert sidecar_env(env={"SHELL": "/bin/zsh"}).startswith("export ")
    assert sidecar_env(env={"SHELL": "/opt/pwsh"}).startswith("$Env:")
    assert sidecar_env(env={"SHELL": "/bin/tcsh"}).startswith("export ")


def test_unknown_shell_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "sidecar", "env", "--shell", "cmd"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr and "bash" in proc.stderr


@pytest.mark.parametrize("shell_env, expected", [
    (None, "bash"), ("", "bash"), ("/bin/bash", "bash"), ("/usr/bin/zsh", "zsh"), ("/usr/local/bin/fish", "fish"),
    ("pwsh", "powershell"), ("/usr/bin/pwsh", "powershell"), ("powershell.exe", "powershell"), ("/bin/sh", "bash"),
])
def test_guess_shell(shell_env, expected):
    assert guess_shell(shell_env) == expected


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_render_quotes_awkward_values_for_posix_shells(shell):
    value = "it's $HOME `x` \"q\" \\"
    out = render({"OPENAI_API_KEY": value, "OPENAI_BASE_URL": "http://h:1/v1"}, shell)
    proc = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$OPENAI_API_KEY"', "sh", out],
                          capture_output=True, text=True, timeout=10)
    assert proc.stdout == value


def test_render_quotes_for_fish_and_powershell():
    assert render({"A": "it's"}, "powershell") == "$Env:A = 'it''s'\n"
    assert render({"A": "plain"}, "fish") == "set -gx A 'plain';\n"


def test_render_rejects_unknown_shell():
    with pytest.raises(ValueError, match="bash"):
        render({"A": "b"}, "tcsh")
