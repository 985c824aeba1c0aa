"""Turning usage into dollars.

Prices come from the `genai-prices` catalog (pydantic's maintained, versioned price table, shipped as a
snapshot inside the package: used offline, no network fetch at start), overlaid by ``[prices."p/m"]``
overrides from the config. An unknown model costs ``None`` — shown as unknown, never as $0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
        self._rate_cache: dict[tuple[str, str], tuple[Any, _Rates | None]] = {}

    def cost_breakdown(self, provider: str, model: str, usage: Usage) -> tuple[float | None, dict[str, Any] | None]:
        """The cost and how it was computed: tokens × rate per meter, and where the rates came from.

        Kept on each record so a number can be audited later (prices change; the record keeps the rates used).
        """
        override = self._overrides.get(f"{provider}/{model}")
        if override is not None:
            rates = _Rates(override.input, override.output, override.cache_read, override.cache_write, float("inf"))
            return rates.cost(usage), rates.breakdown(usage, "config [prices] override")
        found = self._lookup(provider, model)
        if found is None:
            return None, None
        rates = self._rates(provider, model, found[1])
        total = self.cost(provider, model, usage)
        if rates is not None and usage.input < rates.tier_start and total is not None:
            return total, rates.breakdown(usage, CATALOG_VERSION)
        return total, None if total is None else {"source": CATALOG_VERSION, "total_usd": total,
                                                  "note": "tiered or special price: computed by the catalog"}

    def cost(self, provider: str, model: str, usage: Usage) -> float | None:
        override = self._overrides.get(f"{provider}/{model}")
        if override is not None:
            return _cost_from_override(override, usage)
        found = self._lookup(provider, model)
        if found is None:
            return None
        catalog_provider, model_info = found
        rates = self._rates(provider, model, model_info)
        if rates is not None and usage.input < rates.tier_start:
            return rates.cost(usage)
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

    def _rates(self, provider: str, model: str, model_info: Any) -> _Rates | None:
        """Flat per-million rates for today, cached: the catalog's own calculation costs ~70 µs a request,
        and pricing runs for every request. Tiered prices use their base rate below the first tier; above
        it (and for anything unusual) the catalog computes the cost itself."""
        today = datetime.now(tz=UTC).date()
        key = (provider, model)
        cached = self._rate_cache.get(key)
        if cached is not None and cached[0] == today:
            return cached[1]
        rates: _Rates | None = None
        try:
            price = model_info.get_prices(datetime.now(tz=UTC))
            tier_start = float("inf")
            values = {}
            for field in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"):
                v = getattr(price, field, None)
                if v is not None and hasattr(v, "base"):  # TieredPrices
                    if v.tiers:
                        tier_start = min(tier_start, min(t.start for t in v.tiers))
                    v = v.base
                values[field] = None if v is None else float(v)
            if values["input_mtok"] is not None and values["output_mtok"] is not None:
                rates = _Rates(values["input_mtok"], values["output_mtok"], values["cache_read_mtok"],
                               values["cache_write_mtok"], tier_start)
        except Exception:  # an unusual catalog entry: leave it to calc_price
            rates = None
        self._rate_cache[key] = (today, rates)
        return rates

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


@dataclass(frozen=True, slots=True)
class _Rates:
    input: float
    output: float
    cache_read: float | None
    cache_write: float | None
    tier_start: float
    """Input tokens from which a higher tier applies (inf when flat)."""

    def cost(self, usage: Usage) -> float:
        return _cost_from_override(Price(self.input, self.output, self.cache_read, self.cache_write), usage)

    def breakdown(self, usage: Usage, source: str) -> dict[str, Any]:
        """Each meter as tokens × USD per million: the same arithmetic as `cost`, written out."""
        read_rate = self.input if self.cache_read is None else self.cache_read
        write_rate = self.input if self.cache_write is None else self.cache_write
        meters = [
            ("input (uncached)", max(usage.input - usage.cache_read - usage.cache_write, 0), self.input),
            ("cache read", usage.cache_read, read_rate),
            ("cache write", usage.cache_write, write_rate),
            ("output (incl. reasoning)", usage.output, self.output),
        ]
        rows = [{"meter": name, "tokens": n, "usd_per_mtok": rate, "usd": round(n * rate / 1_000_000, 10)}
                for name, n, rate in meters if n]
        return {"source": source, "meters": rows, "total_usd": self.cost(usage)}


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
