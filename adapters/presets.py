"""Built-in provider presets: data, not code.

Many providers share a wire format, so adding one is a row here (base URL, auth header, quirks),
never a new adapter module. A user's config can override any field of a preset or add a provider
of its own with ``adapter = "openai" | "anthropic" | "gemini"``.

Base URLs follow each official SDK's own convention, so users can paste what they already know:
OpenAI-style bases include the version path (``.../v1``); Anthropic and Gemini bases are the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ADAPTERS = ("openai", "anthropic", "gemini")
"""The upstream wire formats a provider can speak."""

AUTH_HEADERS = {"openai": "authorization", "anthropic": "x-api-key", "gemini": "x-goog-api-key"}
"""The header each adapter's key goes in (``authorization`` is sent as ``Bearer <key>``)."""


@dataclass(frozen=True, slots=True)
class ProviderPreset:
    """How to reach one provider."""

    id: str
    adapter: str
    base_url: str
    needs_key: bool = True
    responses_api: bool = False
    """Serves OpenAI's ``/responses`` endpoint (only meaningful for adapter ``openai``)."""
    stream_usage: bool = True
    """Accepts ``stream_options.include_usage``; a few compat servers reject unknown fields."""
    model_prefixes: tuple[str, ...] = ()
    """Bare model names starting with one of these route here when no catalog entry says otherwise."""
    genai_prices_id: str | None = None
    """Provider id in the genai-prices catalog, when it differs from ``id`` (or None to use ``id``)."""
    extra_headers: dict[str, str] = field(default_factory=dict)


PRESETS: dict[str, ProviderPreset] = {
    p.id: p
    for p in (
        ProviderPreset(
            "openai", "openai", "https://api.openai.com/v1", responses_api=True,
            model_prefixes=("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "codex-"),
        ),
        ProviderPreset(
            "anthropic", "anthropic", "https://api.anthropic.com", model_prefixes=("claude-",),
        ),
        ProviderPreset(
            "gemini", "gemini", "https://generativelanguage.googleapis.com",
            model_prefixes=("gemini-", "gemma-"), genai_prices_id="google",
        ),
        ProviderPreset("groq", "openai", "https://api.groq.com/openai/v1"),
        ProviderPreset(
            "mistral", "openai", "https://api.mistral.ai/v1",
            model_prefixes=("mistral-", "codestral-", "magistral-", "devstral-", "ministral-", "pixtral-"),
        ),
        ProviderPreset("deepseek", "openai", "https://api.deepseek.com/v1", model_prefixes=("deepseek-",)),
        ProviderPreset("openrouter", "openai", "https://openrouter.ai/api/v1", responses_api=True),
        ProviderPreset("together", "openai", "https://api.together.xyz/v1"),
        ProviderPreset("xai", "openai", "https://api.x.ai/v1", model_prefixes=("grok-",), genai_prices_id="x-ai"),
        ProviderPreset("ollama", "openai", "http://127.0.0.1:11434/v1", needs_key=False),
        ProviderPreset("vllm", "openai", "http://127.0.0.1:8000/v1", needs_key=False),
        ProviderPreset("lmstudio", "openai", "http://127.0.0.1:1234/v1", needs_key=False),
    )
}
