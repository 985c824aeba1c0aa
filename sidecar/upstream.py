"""The upstream side: one pooled HTTP session, URL building, and which headers cross the proxy.

Headers are filtered by a deny list, as reverse proxies do: everything the client's SDK sends that the
provider may need (``anthropic-version``, ``anthropic-beta``, ``openai-organization``, user agent) goes
through, while hop-by-hop headers and every header that can carry a credential are dropped, so the
client's placeholder key never reaches a provider and only the keyring's key does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote

import aiohttp

from adapters.presets import ProviderPreset

CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization", "cookie"})
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
     "content-length", "accept-encoding", "expect"}
)
_DROP_REQUEST = CREDENTIAL_HEADERS | HOP_BY_HOP | {"origin", "referer"}
_DROP_RESPONSE = HOP_BY_HOP | {"content-encoding", "set-cookie", "server", "date"}


def make_session(*, connect_timeout: float) -> aiohttp.ClientSession:
    """The one session every upstream call shares, so connections are pooled and reused.

    No total timeout (it would cut long healthy streams; aiohttp's default is 5 minutes); the proxy
    enforces first-byte and idle deadlines itself. Bodies are decompressed here because usage is read
    from them on the way through.

    Up to 512 connections in all and no cap per provider: HTTP/1.1 carries one request at a time per connection,
    so a cap per provider (it was 64) queued every stream beyond it until another one ended — 128 concurrent
    streams to one provider took twice as long as without the sidecar. The total stays well under the usual
    1024 open files.

    No cookie jar: the session is shared by every app behind the sidecar, so a cookie one provider answer sets
    (a CDN's bot-management cookie, say) would otherwise be replayed on every later request from any app. The
    client's own Cookie header is dropped as a credential and Set-Cookie never reaches clients; the sidecar
    keeps no cookies either.
    """
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=None),
        auto_decompress=True,
        read_bufsize=256 * 1024,
        skip_auto_headers=("User-Agent",),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


_TRANSLATED_KEEP = frozenset({"user-agent", "accept", "accept-language"})
"""The only client headers that cross to a provider of another family. Agents send session ids, install ids
and billing markers (Codex's x-codex-turn-metadata, Claude Code's X-Claude-Code-Session-Id) that are meant for
their own vendor, not for whichever provider the sidecar picked."""


@dataclass(slots=True)
class UpstreamPlan:
    """How one attempt talks to its provider: what to send, and how to bring the answer back."""

    url: str
    body: bytes
    upstream_fmt: str
    body_transform: Callable[[bytes], Any]
    stream_transform: Callable[[], Any]
    params: dict[str, str] | None = None
    content_type: str | None = None
    """Overrides the upstream's Content-Type (a translated answer is in the client's format)."""
    warnings: list[str] = field(default_factory=list)


def forward_headers(incoming: Mapping[str, str], provider: ProviderPreset, key: str | None,
                    *, same_format: bool = True) -> dict[str, str]:
    """Client headers minus credentials and hop-by-hop ones, plus the provider's own auth.

    When translating, only a few generic headers cross (see ``_TRANSLATED_KEEP``): the rest belong to the client's
    API family or vendor and mean nothing, or something else, to another provider.
    """
    if same_format:
        headers = {k: v for k, v in incoming.items()
                   if k.lower() not in _DROP_REQUEST and not k.lower().startswith("x-sidecar-")}
    else:
        headers = {k: v for k, v in incoming.items() if k.lower() in _TRANSLATED_KEEP}
    headers.update(provider.extra_headers)
    if provider.adapter == "anthropic" and not any(k.lower() == "anthropic-version" for k in headers):
        headers["anthropic-version"] = "2023-06-01"
    headers["Content-Type"] = "application/json"
    if key:
        if provider.adapter == "anthropic":
            headers["x-api-key"] = key
        elif provider.adapter == "gemini":
            headers["x-goog-api-key"] = key
        else:
            headers["Authorization"] = f"Bearer {key}"
    return headers


def response_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    """Provider response headers worth relaying (rate limits, request ids), minus hop-by-hop ones."""
    return {k: v for k, v in upstream.items() if k.lower() not in _DROP_RESPONSE and k.lower() != "content-type"}


def chat_url(provider: ProviderPreset, inbound: str, model: str, *, stream: bool, api_version: str = "v1beta") -> str:
    """The provider URL for a generation request in the provider's own format.

    ``api_version`` is Gemini's path version as the client used it (``v1beta`` or ``v1``).
    """
    base = provider.base_url
    if provider.adapter == "openai":
        return f"{base}/responses" if inbound == "openai_responses" else f"{base}/chat/completions"
    if provider.adapter == "anthropic":
        return f"{base}/v1/messages"
    method = "streamGenerateContent" if stream else "generateContent"
    return f"{base}/{api_version}/models/{quote(model, safe='')}:{method}"


def models_url(provider: ProviderPreset) -> str:
    if provider.adapter == "openai":
        return f"{provider.base_url}/models"
    if provider.adapter == "anthropic":
        return f"{provider.base_url}/v1/models?limit=1000"
    return f"{provider.base_url}/v1beta/models?pageSize=1000"
