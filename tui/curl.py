"""Copy-as-curl for a recorded request: pure string building, no I/O, no textual import.

Two commands can be made from one stored record:

- **via the sidecar** (the default): the request as the client sent it, to the sidecar's own inbound
  endpoint, so routing, keys, budgets and recording all apply again. The API key is a placeholder (the
  sidecar swaps in the real one), or the shell's `$SIDECAR_TOKEN` (placeholder when unset) when the TUI itself
  presents a client token, i.e. when the sidecar may require one.
- **direct to the provider**: the provider's URL with the provider's auth header, the key read from the
  keyring when the command runs (`$(python3 -m keyring get llm-sidecar <provider>)`), never written out.
  Only for pass-through requests: the store keeps the client's (inbound) body, which is not what went
  upstream when the sidecar translated it, and a command that sends something else would mislead.

Bodies go in a quoted heredoc (`<<'JSON'`), so quotes, `$(`, backticks and newlines reach curl untouched
and the JSON stays readable. The heredoc adds one trailing newline when the body has none: whitespace,
which JSON ignores. When the body was not stored, or was cut at the store's cap, no command is made; the
reason is given instead, because a command that sends broken JSON is worse than none.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

KEYRING_SERVICE = "llm-sidecar"
PLACEHOLDER_KEY = "placeholder"
ANTHROPIC_VERSION = "2023-06-01"
TOKEN_REF = "${SIDECAR_TOKEN:-placeholder}"
"""The shell's client token when it has one, else the placeholder. Not `${...:?}` (stop when unset): `sidecar up`
gives its TUI a token even when the sidecar is open, and a sidecar that does require one answers a clear 401."""

INBOUND_PATHS = {
    "openai_chat": "/v1/chat/completions",
    "openai_responses": "/v1/responses",
    "anthropic": "/v1/messages",
}
"""Fixed inbound endpoints; Gemini's carries the model in the path and is rebuilt from the record."""

CLIENT_KEY_HEADER = {
    "openai_chat": ("Authorization", "Bearer "),
    "openai_responses": ("Authorization", "Bearer "),
    "anthropic": ("x-api-key", ""),
    "gemini": ("x-goog-api-key", ""),
}
"""Where each inbound format's SDK puts its API key: (header, value prefix)."""

PROVIDER_KEY_HEADER = {"openai": ("Authorization", "Bearer "), "anthropic": ("x-api-key", ""),
                       "gemini": ("x-goog-api-key", "")}
NATIVE_ADAPTER = {"openai_chat": "openai", "openai_responses": "openai", "anthropic": "anthropic", "gemini": "gemini"}
"""The provider adapter that speaks each inbound format, i.e. when the sidecar passes the body through."""

_GEMINI_PATH = re.compile(r"^/(v1beta|v1)/models/(.+):(generateContent|streamGenerateContent)$")


class NotReplayable(ValueError):
    """The record cannot be sent again as it was; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """A recorded request as the sidecar received it, ready to send again (no key in it)."""

    fmt: str
    path: str
    """URL path and query, percent-encoded, e.g. `/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`."""
    body: str
    """The stored request body, verbatim."""
    parsed: dict[str, Any]
    stream: bool
    headers: dict[str, str] = field(default_factory=dict)
    """Headers the format needs besides the key (content type, `anthropic-version`)."""


@dataclass(frozen=True, slots=True)
class Curl:
    """One variant: the command, or None with `note` saying why there is none."""

    title: str
    command: str | None
    note: str


def inbound_request(record: Mapping[str, Any]) -> Inbound:
    """The request to send again, from a record fetched with its bodies; `NotReplayable` when it can't be."""
    fmt = record.get("inbound")
    if fmt not in CLIENT_KEY_HEADER:
        raise NotReplayable(f"unknown inbound format {fmt!r}")
    text = record.get("request_body")
    if not isinstance(text, str):
        raise NotReplayable("the request body was not stored (the sidecar runs with [store] bodies = false, "
                            "or the request failed before its body was read)")
    try:
        # Standard json, not orjson: it accepts integers of any size, so a valid body is never refused.
        parsed = json.loads(text)
    except ValueError:
        if record.get("bodies_truncated"):
            raise NotReplayable("the request body was cut at the store's size cap ([store] body_cap_kb), "
                                "so it is not the request that was sent") from None
        raise NotReplayable("the stored request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise NotReplayable("the stored request body is not a JSON object")
    stream = record.get("stream") is True
    headers = {"Content-Type": "application/json"}
    if fmt == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
    return Inbound(fmt, _inbound_path(fmt, record, stream), text, parsed, stream, headers)


def _inbound_path(fmt: str, record: Mapping[str, Any], stream: bool) -> str:
    if fmt != "gemini":
        return INBOUND_PATHS[fmt]
    path = record.get("path")
    match = _GEMINI_PATH.match(path) if isinstance(path, str) else None
    if match is None:
        model = record.get("requested_model")
        if not isinstance(model, str) or not model:
            raise NotReplayable("the record names no Gemini model or path")
        match = _GEMINI_PATH.match(f"/v1beta/models/{model}:{'streamGenerateContent' if stream else 'generateContent'}")
        assert match is not None
    version, model, method = match.groups()
    query = "?alt=sse" if method == "streamGenerateContent" else ""
    return f"/{version}/models/{quote(model, safe='/')}:{method}{query}"


def via_sidecar(record: Mapping[str, Any], sidecar_url: str, *, token: bool) -> Curl:
    """A curl to the sidecar's inbound endpoint with the client's body; `token` when the sidecar wants one."""
    title = "via the sidecar"
    try:
        req = inbound_request(record)
    except NotReplayable as exc:
        return Curl(title, None, str(exc))
    name, prefix = CLIENT_KEY_HEADER[req.fmt]
    key = _double_quoted(f"{name}: {prefix}", TOKEN_REF) if token else shlex.quote(f"{name}: {prefix}{PLACEHOLDER_KEY}")
    headers = [shlex.quote(f"{k}: {v}") for k, v in req.headers.items()] + [key]
    note = ("body: as the client sent it; the sidecar routes it again, injects the provider key and records it. "
            + ("The key is your shell's $SIDECAR_TOKEN when set (a sidecar that requires client tokens needs one: "
               "sidecar tokens create NAME), else a placeholder." if token else
               "The key is a placeholder: the sidecar replaces it with the real one."))
    return Curl(title, command(sidecar_url.rstrip("/") + req.path, headers, req.body, stream=req.stream), note)


def direct(record: Mapping[str, Any], providers: list[dict[str, Any]] | None) -> Curl:
    """A curl straight to the provider that served (or last tried) the request, for pass-through requests only.

    `providers` is `/_sidecar/health`'s list (`id`, `adapter`, `base_url`, `needs_key`); None when unknown."""
    pid = record.get("provider")
    title = f"direct to {pid}" if isinstance(pid, str) and pid else "direct to the provider"
    if not isinstance(pid, str) or not pid:
        return Curl(title, None, "no provider was tried for this request, so there is no provider to call")
    try:
        req = inbound_request(record)
    except NotReplayable as exc:
        return Curl(title, None, str(exc))
    if providers is None:
        return Curl(title, None, "the sidecar's provider list could not be read (/_sidecar/health)")
    provider = next((p for p in providers if isinstance(p, dict) and p.get("id") == pid), None)
    if provider is None or not isinstance(provider.get("base_url"), str):
        return Curl(title, None, f"provider {pid!r} is not in the sidecar's configuration any more")
    adapter = provider.get("adapter")
    if NATIVE_ADAPTER[req.fmt] != adapter or adapter not in PROVIDER_KEY_HEADER:
        return Curl(title, None, f"this request was translated ({req.fmt} in, {adapter} format to {pid}): the stored "
                                 f"body is the client's {req.fmt} body, not what {pid} received, so a direct command "
                                 "would send the wrong thing; use the via-sidecar command")
    model = record.get("model")
    if not isinstance(model, str) or not model:
        return Curl(title, None, "the record does not say which model was sent upstream")
    base = provider["base_url"].rstrip("/")
    if adapter == "openai":
        url = base + ("/responses" if req.fmt == "openai_responses" else "/chat/completions")
    elif adapter == "anthropic":
        url = base + "/v1/messages"
    else:
        version = req.path.split("/", 2)[1]
        method = "streamGenerateContent?alt=sse" if req.stream else "generateContent"
        url = f"{base}/{version}/models/{quote(model, safe='')}:{method}"
    body = req.body if adapter == "gemini" else with_model(req.body, req.parsed, model)
    headers = [shlex.quote(f"{k}: {v}") for k, v in req.headers.items()]
    if provider.get("needs_key", True):
        name, prefix = PROVIDER_KEY_HEADER[adapter]
        lookup = f"$(python3 -m keyring get {KEYRING_SERVICE} {shlex.quote(pid)})"
        headers.append(_double_quoted(f"{name}: {prefix}", lookup))
        key_note = (f"The key is read from the OS keyring when the command runs (service {KEYRING_SERVICE}, "
                    f"user {pid}; needs `pip install keyring` for python3), never written here.")
    else:
        key_note = f"{pid} needs no key."
    note = (f"body: the client's request, passed through unchanged except the model ({model}, as sent upstream). "
            "Provider-specific extra headers from the config are not included. " + key_note)
    return Curl(title, command(url, headers, body, stream=req.stream), note)


def with_model(body: str, parsed: dict[str, Any], model: str) -> str:
    """`body` with its top-level `model` set to `model`, otherwise as stored (as the sidecar's pass-through does).

    A text substitution keeps the client's formatting; it is used only when the `"model": "<old>"` pair occurs
    once (so it is the top-level one); otherwise the body is re-serialised, which is equivalent JSON."""
    old = parsed.get("model")
    if old == model:
        return body
    if isinstance(old, str):
        pattern = re.compile(r'"model"\s*:\s*' + re.escape(json.dumps(old, ensure_ascii=False)))
        if len(pattern.findall(body)) == 1:
            return pattern.sub(lambda _m: '"model": ' + json.dumps(model, ensure_ascii=False), body, count=1)
    return json.dumps({**parsed, "model": model}, ensure_ascii=False)


def command(url: str, headers: list[str], body: str, *, stream: bool) -> str:
    """`curl` with already shell-quoted header arguments and `body` in a quoted heredoc.

    `-N` for streams, so events print as they arrive; `-sS` hides the progress meter but not errors."""
    delimiter = heredoc_delimiter(body)
    parts = [f"curl -sS{' -N' if stream else ''} {shlex.quote(url)}", *(f"-H {h}" for h in headers),
             f"--data-binary @- <<'{delimiter}'"]
    text = body if body.endswith("\n") else body + "\n"
    return " \\\n  ".join(parts) + "\n" + text + delimiter


def heredoc_delimiter(body: str) -> str:
    """`JSON`, unless a line of the body is exactly that (then `JSON_1`, `JSON_2`, ...): the heredoc would end early."""
    lines = set(body.split("\n"))
    delimiter, n = "JSON", 0
    while delimiter in lines:
        n += 1
        delimiter = f"JSON_{n}"
    return delimiter


def _double_quoted(literal: str, expansion: str) -> str:
    """`"<literal><expansion>"`: the literal escaped for double quotes, the expansion (`$(...)`, `${...}`) live."""
    escaped = re.sub(r'(["\\$`])', r"\\\1", literal)
    return f'"{escaped}{expansion}"'
