"""Which adapter module speaks each inbound format, and which providers a format can pass through to."""

from __future__ import annotations

import importlib
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


UPSTREAM_FORMAT = {"openai": "openai_chat", "anthropic": "anthropic", "gemini": "gemini"}
"""The wire format each provider adapter speaks (OpenAI-compatible providers all take chat completions)."""


def codec(fmt: str) -> ModuleType:
    """The IR codec of a format (``adapters/<format>_codec.py``), imported on first use."""
    module = _CODECS.get(fmt)
    if module is None:
        module = importlib.import_module(f"adapters.{fmt}_codec")
        _CODECS[fmt] = module
    return module


_CODECS: dict[str, ModuleType] = {}

CLIENT_STATUS = {529: 503}
"""Statuses only one family knows, mapped for clients of another (Anthropic's 529 "overloaded" is a 503 elsewhere)."""


def translate_error_status(status: int, upstream_fmt: str, client_fmt: str) -> int:
    if upstream_fmt == client_fmt or client_fmt == "anthropic":
        return status
    return CLIENT_STATUS.get(status, status)
