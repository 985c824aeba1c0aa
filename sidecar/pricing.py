"""Turning usage into dollars.

Prices come from the `genai-prices` catalog (pydantic's maintained, versioned price table, shipped as a
snapshot inside the package: used offline, no network fetch at start), overlaid by ``[prices."p/m"]``
overrides from the config. An unknown model costs ``None`` — shown as unknown, never as $0.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import genai_prices
from genai_prices import data_snapshot

from adapters.ir import Usage
from adapters.presets import ProviderPreset
from sidecar.config import Price

log = logging.getLogger("sidecar.pricing")

CATALOG_VERSION = f"genai-prices {genai_prices.__version__}"


class PriceBook:
    """Cost of a request per provider and model; lookups are cached, so pricing a request is cheap."""

    def __init__(self, providers: dict[str, ProviderPreset], overrides: dict[str, Price] | None = None) -> None:
        self._providers = providers
        self._overrides = overrides or {}
        self._models: dict[tuple[str, str], tuple[Any, Any] | None] = {}

    def cost(self, provider: str, model: str, usage: Usage) -> float | None:
        override = self._overrides.get(f"{provider}/{model}")
        if override is not None:
            return _cost_from_override(override, usage)
        found = self._lookup(provider, model)
        if found is None:
            return None
        catalog_provider, model_info = found
        try:
            calc = model_info.calc_price(
                genai_prices.Usage(
                    input_tokens=usage.input,
                    output_tokens=usage.output,
                    cache_read_tokens=usage.cache_read,
                    cache_write_tokens=usage.cache_write,
                ),
                catalog_provider,
                genai_request_timestamp=datetime.now(tz=UTC),
            )
        except Exception as exc:  # a catalog quirk must never fail a request
            log.warning("pricing %s/%s failed: %s", provider, model, exc)
            return None
        return float(calc.total_price)

    def knows(self, provider: str, model: str) -> bool:
        return f"{provider}/{model}" in self._overrides or self._lookup(provider, model) is not None

    def _lookup(self, provider: str, model: str) -> tuple[Any, Any] | None:
        key = (provider, model)
        if key in self._models:
            return self._models[key]
        preset = self._providers.get(provider)
        catalog_id = (preset.genai_prices_id if preset else None) or provider
        try:
            found = data_snapshot.get_snapshot().find_provider_model(model, None, catalog_id, None)
        except LookupError:
            found = None
        self._models[key] = found
        return found


def _cost_from_override(price: Price, usage: Usage) -> float:
    """USD for ``usage`` at per-million rates; cached tokens are part of ``input`` (see adapters.ir)."""
    cache_read_rate = price.input if price.cache_read is None else price.cache_read
    cache_write_rate = price.input if price.cache_write is None else price.cache_write
    uncached = max(usage.input - usage.cache_read - usage.cache_write, 0)
    return (
        uncached * price.input
        + usage.cache_read * cache_read_rate
        + usage.cache_write * cache_write_rate
        + usage.output * price.output
    ) / 1_000_000
