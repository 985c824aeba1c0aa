"""``sidecar env``: shell lines that point the common SDKs and agents at the sidecar.

The keys set here are placeholders: the sidecar strips whatever key a client sends and injects the
real one from the keyring, so nothing secret ever sits in the shell's environment.
"""

from __future__ import annotations

PLACEHOLDER_KEY = "sidecar"
SHELLS = ("bash", "zsh", "fish", "powershell")


def env_vars(base_url: str, *, token: str = PLACEHOLDER_KEY) -> dict[str, str]:
    """Variable → value for the official SDKs and the agents built on them."""
    return {
        "OPENAI_BASE_URL": f"{base_url}/v1",   # openai SDKs, Codex CLI, many agents
        "OPENAI_API_KEY": token,
        "ANTHROPIC_BASE_URL": base_url,        # anthropic SDKs, Claude Code
        "ANTHROPIC_API_KEY": token,
        "GOOGLE_GEMINI_BASE_URL": base_url,    # google-genai SDK, Gemini CLI
        "GEMINI_API_KEY": token,
    }


def render(variables: dict[str, str], shell: str) -> str:
    if shell not in SHELLS:
        raise ValueError(f"unknown shell {shell!r}; expected one of {', '.join(SHELLS)}")
    lines = []
    for name, value in variables.items():
        quoted = "'" + value.replace("'", "'\\''") + "'"
        if shell == "fish":
            lines.append(f"set -gx {name} {quoted};")
        elif shell == "powershell":
            lines.append(f"$Env:{name} = '{value.replace(chr(39), chr(39) * 2)}'")
        else:
            lines.append(f"export {name}={quoted}")
    return "\n".join(lines) + "\n"


def guess_shell(shell_env: str | None) -> str:
    """The user's shell from $SHELL, defaulting to POSIX syntax (bash and zsh share it)."""
    name = (shell_env or "").rsplit("/", 1)[-1]
    return name if name in SHELLS else ("powershell" if name in ("pwsh", "powershell.exe") else "bash")
