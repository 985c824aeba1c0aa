"""`tui/curl.py`: the commands are run by a real bash with `curl` (and `python3`) replaced by shell functions
that write down what they were given, so quoting is checked by the shell itself, without any network."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tui.curl import (NotReplayable, direct, heredoc_delimiter, inbound_request, via_sidecar,
                      with_model)

NASTY = {
    "model": "openai/gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "it's \"quoted\" and 'single' \\ back\\slash"},
        {"role": "user", "content": "$(touch pwned) `touch pwned2` ${HOME} $HOME !! \\n newline\nraw 日本語 🎉 é"},
    ],
    "stream": False,
}
NASTY_BODY = json.dumps(NASTY, ensure_ascii=False, indent=2)  # real newlines between tokens
PROVIDERS = [
    {"id": "openai", "adapter": "openai", "base_url": "http://127.0.0.1:9001/v1/", "needs_key": True},
    {"id": "anthropic", "adapter": "anthropic", "base_url": "http://127.0.0.1:9002", "needs_key": True},
    {"id": "gemini", "adapter": "gemini", "base_url": "http://127.0.0.1:9003", "needs_key": True},
    {"id": "local box", "adapter": "openai", "base_url": "http://127.0.0.1:11434/v1", "needs_key": True},
    {"id": "ollama", "adapter": "openai", "base_url": "http://127.0.0.1:11434/v1", "needs_key": False},
]


def rec(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "r1", "inbound": "openai_chat", "provider": "openai", "model": "gpt-4o-mini",
        "requested_model": "openai/gpt-4o-mini", "stream": False, "path": "/v1/chat/completions",
        "request_body": NASTY_BODY, "response_body": "{}", "bodies_truncated": False,
    }  # fmt: skip
    base.update(over)
    return base


def run(cmd: str, tmp_path: Path, env: dict[str, str] | None = None) -> tuple[int, list[str], bytes, str]:
    """Run `cmd` in bash with `curl` and `python3` as recorders; (exit code, curl's args, curl's stdin, stderr)."""
    prelude = (
        f"cd {tmp_path}\n"
        "curl() { printf '%s\\0' \"$@\" > args; cat > body; }\n"
        "python3() { printf '%s\\0' \"$@\" > py_args; printf 'sk-from-the-keyring'; }\n"
    )
    env = {"PATH": "/usr/bin:/bin", **(env or {})}
    proc = subprocess.run(["bash", "-c", prelude + cmd], capture_output=True, env=env, timeout=10)
    args_file, body_file = tmp_path / "args", tmp_path / "body"
    args = args_file.read_bytes().decode().split("\0")[:-1] if args_file.exists() else []
    body = body_file.read_bytes() if body_file.exists() else b""
    return proc.returncode, args, body, proc.stderr.decode()


def header_args(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == "-H"]


def test_nasty_body_reaches_curl_byte_for_byte(tmp_path: Path) -> None:
    curl = via_sidecar(rec(), "http://127.0.0.1:8787/", token=False)
    assert curl.command is not None
    code, args, body, err = run(curl.command, tmp_path)
    assert code == 0, err
    assert body == (NASTY_BODY + "\n").encode(), "the heredoc adds exactly one newline (JSON whitespace)"
    assert json.loads(body) == NASTY
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    assert args[:2] == ["-sS", "http://127.0.0.1:8787/v1/chat/completions"]
    assert header_args(args) == ["Content-Type: application/json", "Authorization: Bearer placeholder"]
    assert args[-2:] == ["--data-binary", "@-"]


def test_body_ending_in_newline_is_not_padded(tmp_path: Path) -> None:
    curl = via_sidecar(rec(request_body='{"model": "x"}\n'), "http://127.0.0.1:8787", token=False)
    assert curl.command is not None
    assert run(curl.command, tmp_path)[2] == b'{"model": "x"}\n'


def test_heredoc_delimiter_avoids_lines_of_the_body() -> None:
    assert heredoc_delimiter('{"a": 1}') == "JSON"
    assert heredoc_delimiter("x\nJSON\ny") == "JSON_1"
    assert heredoc_delimiter("JSON\nJSON_1") == "JSON_2"
    assert heredoc_delimiter(" JSON") == "JSON"


@pytest.mark.parametrize(("over", "url", "headers", "stream"), [
    ({"inbound": "openai_responses", "path": "/v1/responses", "stream": True},
     "http://127.0.0.1:8787/v1/responses",
     ["Content-Type: application/json", "Authorization: Bearer placeholder"], True),
    ({"inbound": "anthropic", "path": "/v1/messages"},
     "http://127.0.0.1:8787/v1/messages",
     ["Content-Type: application/json", "anthropic-version: 2023-06-01", "x-api-key: placeholder"], False),
    ({"inbound": "gemini", "path": "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "stream": True},
     "http://127.0.0.1:8787/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
     ["Content-Type: application/json", "x-goog-api-key: placeholder"], True),
    ({"inbound": "gemini", "path": "/v1/models/gemini-2.5-pro:generateContent"},
     "http://127.0.0.1:8787/v1/models/gemini-2.5-pro:generateContent",
     ["Content-Type: application/json", "x-goog-api-key: placeholder"], False),
])  # fmt: skip
def test_via_sidecar_speaks_each_format(tmp_path: Path, over: dict[str, Any], url: str, headers: list[str],
                                        stream: bool) -> None:
    curl = via_sidecar(rec(**over), "http://127.0.0.1:8787", token=False)
    assert curl.command is not None
    code, args, body, err = run(curl.command, tmp_path)
    assert code == 0, err
    assert args[0] == "-sS" and (args[1] == "-N") is stream
    assert url in args and header_args(args) == headers
    assert json.loads(body) == NASTY


def test_token_comes_from_the_shell_else_the_placeholder(tmp_path: Path) -> None:
    curl = via_sidecar(rec(inbound="anthropic", path="/v1/messages"), "http://127.0.0.1:8787", token=True)
    assert curl.command is not None and "sct_" not in curl.command
    assert "sidecar tokens create NAME" in curl.note
    code, args, _, err = run(curl.command, tmp_path, {"SIDECAR_TOKEN": "sct_from_shell"})
    assert code == 0, err
    assert "x-api-key: sct_from_shell" in header_args(args)
    code, args, _, err = run(curl.command, tmp_path)
    assert code == 0, err
    assert "x-api-key: placeholder" in header_args(args)


def test_direct_reads_the_key_from_the_keyring_at_run_time(tmp_path: Path) -> None:
    curl = direct(rec(), PROVIDERS)
    assert curl.command is not None and curl.title == "direct to openai"
    assert '"Authorization: Bearer $(python3 -m keyring get llm-sidecar openai)"' in curl.command
    code, args, body, err = run(curl.command, tmp_path)
    assert code == 0, err
    py_args = (tmp_path / "py_args").read_bytes().split(b"\0")[:-1]
    assert py_args == [b"-m", b"keyring", b"get", b"llm-sidecar", b"openai"]
    assert args[1] == "http://127.0.0.1:9001/v1/chat/completions"
    assert "Authorization: Bearer sk-from-the-keyring" in header_args(args)
    sent = json.loads(body)
    assert sent == {**NASTY, "model": "gpt-4o-mini"}, "the model as sent upstream, the rest as the client sent it"
    assert body.decode().replace('"model": "gpt-4o-mini"', '"model": "openai/gpt-4o-mini"') == NASTY_BODY + "\n"


def test_direct_quotes_a_strange_provider_id(tmp_path: Path) -> None:
    curl = direct(rec(provider="local box", model="llama3"), PROVIDERS)
    assert curl.command is not None
    code, _, _, err = run(curl.command, tmp_path)
    assert code == 0, err
    assert (tmp_path / "py_args").read_bytes().split(b"\0")[:-1] == [b"-m", b"keyring", b"get", b"llm-sidecar",
                                                                    b"local box"]


@pytest.mark.parametrize(("over", "url", "auth"), [
    ({"inbound": "anthropic", "provider": "anthropic", "model": "claude-haiku-4-5", "path": "/v1/messages",
      "stream": True},
     "http://127.0.0.1:9002/v1/messages", "x-api-key: sk-from-the-keyring"),
    ({"inbound": "gemini", "provider": "gemini", "model": "gemini-2.5-flash", "stream": True,
      "path": "/v1beta/models/gemini/gemini-2.5-flash:streamGenerateContent"},
     "http://127.0.0.1:9003/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
     "x-goog-api-key: sk-from-the-keyring"),
    ({"inbound": "openai_responses", "provider": "openai", "path": "/v1/responses"},
     "http://127.0.0.1:9001/v1/responses", "Authorization: Bearer sk-from-the-keyring"),
])  # fmt: skip
def test_direct_per_provider_format(tmp_path: Path, over: dict[str, Any], url: str, auth: str) -> None:
    record = rec(**over)
    curl = direct(record, PROVIDERS)
    assert curl.command is not None, curl.note
    code, args, body, err = run(curl.command, tmp_path)
    assert code == 0, err
    assert url in args and auth in header_args(args)
    assert ("-N" in args) is record["stream"]
    if record["inbound"] == "gemini":
        assert body == (NASTY_BODY + "\n").encode(), "Gemini names the model in the URL: body as stored"


def test_direct_needs_no_key_for_keyless_providers() -> None:
    curl = direct(rec(provider="ollama", model="llama3"), PROVIDERS)
    assert curl.command is not None
    assert "keyring" not in curl.command and "Authorization" not in curl.command
    assert "needs no key" in curl.note


@pytest.mark.parametrize(("over", "providers", "why"), [
    ({"inbound": "anthropic", "path": "/v1/messages", "provider": "openai"}, PROVIDERS,
     "this request was translated (anthropic in, openai format to openai)"),
    ({"provider": None, "model": None}, PROVIDERS, "no provider was tried"),
    ({"provider": "gone"}, PROVIDERS, "provider 'gone' is not in the sidecar's configuration"),
    ({}, None, "provider list could not be read"),
    ({"model": None}, PROVIDERS, "which model was sent upstream"),
])  # fmt: skip
def test_direct_says_why_not(over: dict[str, Any], providers: list[dict[str, Any]] | None, why: str) -> None:
    curl = direct(rec(**over), providers)
    assert curl.command is None and why in curl.note


@pytest.mark.parametrize(("over", "why"), [
    ({"request_body": None}, "not stored"),
    ({"request_body": NASTY_BODY[:40], "bodies_truncated": True}, "cut at the store's size cap"),
    ({"request_body": "{not json"}, "not valid JSON"),
    ({"request_body": "[1, 2]"}, "not a JSON object"),
    ({"inbound": "cohere"}, "unknown inbound format"),
    ({"inbound": "gemini", "path": None, "requested_model": None}, "no Gemini model"),
])  # fmt: skip
def test_no_command_from_a_body_that_is_not_the_request(over: dict[str, Any], why: str) -> None:
    with pytest.raises(NotReplayable, match=why):
        inbound_request(rec(**over))
    for curl in (via_sidecar(rec(**over), "http://127.0.0.1:8787", token=False), direct(rec(**over), PROVIDERS)):
        assert curl.command is None and why in curl.note


def test_truncation_of_the_response_alone_keeps_the_request_usable() -> None:
    # The store keeps one `truncated` flag for both bodies; a request body that parses whole is complete.
    assert via_sidecar(rec(bodies_truncated=True), "http://127.0.0.1:8787", token=False).command is not None


def test_gemini_path_rebuilt_when_the_record_has_none() -> None:
    req = inbound_request(rec(inbound="gemini", path=None, requested_model="gemini-2.5-flash", stream=True))
    assert req.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def test_big_integers_survive() -> None:
    body = '{"model": "a", "seed": 123456789012345678901234567890}'
    assert with_model(body, json.loads(body), "b") == '{"model": "b", "seed": 123456789012345678901234567890}'


def test_with_model_reserialises_when_the_pair_is_ambiguous() -> None:
    body = '{"model":"a","tools":[{"model":"a"}]}'
    out = with_model(body, json.loads(body), "b")
    assert json.loads(out) == {"model": "b", "tools": [{"model": "a"}]}
    assert with_model(body, json.loads(body), "a") is body
