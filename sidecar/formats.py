"""Which adapter module speaks each inbound format, and which providers a format can pass through to."""

from __future__ import annotations

from types import ModuleType

from adapters import anthropic, gemini, openai_chat, openai_responses
from adapters.presets import ProviderPreset

MODULES: dict[str, ModuleType] = {
    "openai_chat": openai_chat,
    "openai_responses": openai_responses,
    "anthropic": anthropic,
    "gemini": gemini,
}

NATIVE_ADAPTER = {"openai_chat": "openai", "openai_responses": "openai", "anthropic": "anthropic", "gemini": "gemini"}
"""The provider adapter that speaks each inbound format natively (bytes pass through untouched)."""


def module(fmt: str) -> ModuleType:
    return MODULES[fmt]


def can_pass_through(fmt: str, provider: ProviderPreset) -> bool:
    if NATIVE_ADAPTER[fmt] != provider.adapter:
        return False
    return fmt != "openai_responses" or provider.responses_api


def translation_unavailable(fmt: str, provider: ProviderPreset) -> str:
    if fmt == "openai_responses" and provider.adapter == "openai":
        return (f"provider '{provider.id}' does not serve OpenAI's Responses API; use /v1/chat/completions "
                f"for it, or set responses_api = true under [providers.{provider.id}] if it does")
    return (f"provider '{provider.id}' speaks the {provider.adapter} format and this request arrived as {fmt}; "
            f"translating between formats is not available in this version, so call {provider.id} models "
            f"through its own API ({_native_endpoint(provider.adapter)})")


def _native_endpoint(adapter: str) -> str:
    return {
        "openai": "POST /v1/chat/completions",
        "anthropic": "POST /v1/messages",
        "gemini": "POST /v1beta/models/{model}:generateContent",
    }[adapter]
