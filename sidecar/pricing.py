"""Turning usage into dollars.

Prices come from the `genai-prices` catalog (pydantic's maintained, versioned price table), overlaid by
``[prices."p/m"]`` overrides from the config. Which catalog: the snapshot shipped inside the installed package,
unless the user ran ``sidecar prices update``, which saves a newer one in the data dir (`CATALOG_FILE`); that one
is preferred while it is present and valid. Either way it is read from disk: the sidecar never fetches prices
over the network at start or while running (genai-prices' own background updater is never started), so a
request's cost does not depend on whether GitHub answered this morning.

An unknown model costs ``None`` — shown as unknown, never as $0.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import genai_prices
import orjson
from genai_prices import data_snapshot, types

from adapters.ir import Usage
from adapters.presets import ProviderPreset
from sidecar.config import Price

log = logging.getLogger("sidecar.pricing")

CATALOG_VERSION = f"genai-prices {genai_prices.__version__}"
"""Label of the bundled catalog (the one used when no downloaded catalog is present)."""
CATALOG_FILE = "prices-catalog.json"
"""In the data dir: written only by ``sidecar prices update``."""
CATALOG_FORMAT = "llm-sidecar price catalog 1"
REQUIRED_PROVIDERS = ("openai", "anthropic", "google")
"""A catalog missing any of these is refused: a truncated or wrong file must not silently unprice traffic."""
OVERRIDE_SOURCE = "config [prices] override"


class CatalogError(ValueError):
    """A price catalog that does not parse with genai-prices' own types, or is implausibly incomplete."""


@dataclass(frozen=True, slots=True)
class Catalog:
    """A parsed price catalog and where it came from."""

    snapshot: data_snapshot.DataSnapshot
    kind: str
    """``bundled`` (inside the installed genai-prices) or ``downloaded`` (by ``sidecar prices update``)."""
    label: str
    """Short provenance, kept in each record's cost breakdown so a number can be audited later."""
    meta: dict[str, Any] = field(default_factory=dict)
    """For a downloaded catalog: source_url, downloaded_at, last_modified, sha256, providers, models, path."""


_bundled: Catalog | None = None
_loaded: dict[Path, tuple[tuple[int, int], Catalog]] = {}
"""Parsed downloaded catalogs by path, with the (mtime_ns, size) they were read at: many PriceBooks in one
process (tests, `prices show`) share one parse (~80 ms for the full catalog)."""


def bundled_catalog() -> Catalog:
    global _bundled
    if _bundled is None:
        _bundled = Catalog(data_snapshot.get_snapshot(), "bundled", CATALOG_VERSION,
                           {"genai_prices_version": genai_prices.__version__})
    return _bundled


def parse_providers(data: Any) -> list[types.Provider]:
    """Validate a raw catalog (the list genai-prices publishes as ``data.json``) with genai-prices' own types.

    `_providers_from_raw` is what genai-prices' `UpdatePrices.fetch` itself uses; it is private, so the
    dependency is pinned to a minor version (pyproject) and a missing function is a clear `CatalogError`.
    Beyond parsing, every model's current price must resolve, and the big three providers must be there.
    """
    if not isinstance(data, list) or not data:
        raise CatalogError("expected a non-empty JSON array of providers")
    parse = getattr(types, "_providers_from_raw", None)
    if parse is None:  # pragma: no cover - only with a genai-prices outside the pinned range
        raise CatalogError(f"genai-prices {genai_prices.__version__} cannot parse downloaded catalogs")
    try:
        providers = parse(data)
    except Exception as exc:  # pydantic's ValidationError and whatever the normaliser raises
        raise CatalogError(f"does not parse as a genai-prices catalog: {_first_line(exc)}") from None
    now = datetime.now(tz=UTC)
    for provider in providers:
        for model in provider.models:
            try:
                model.get_prices(now)
            except Exception as exc:
                raise CatalogError(f"{provider.id}/{model.id} has no usable price: {_first_line(exc)}") from None
    have = {p.id for p in providers if p.models}
    missing = [p for p in REQUIRED_PROVIDERS if p not in have]
    if missing:
        raise CatalogError(f"no models for provider(s) {', '.join(missing)}: refusing an incomplete catalog")
    return providers


def catalog_from_file(path: Path) -> Catalog:
    """Read a catalog file written by ``sidecar prices update``; raises `CatalogError` / `OSError`."""
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise CatalogError(f"{path} is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != CATALOG_FORMAT:
        raise CatalogError(f"{path} is not a catalog written by `sidecar prices update`")
    providers = parse_providers(doc.get("data"))
    meta = {k: v for k, v in doc.items() if k not in ("data", "format")}
    meta["path"] = str(path)
    day = str(meta.get("downloaded_at") or "")[:10] or "unknown date"
    return Catalog(data_snapshot.DataSnapshot(providers, from_auto_update=False), "downloaded",
                   f"genai-prices catalog downloaded {day}", meta)


def load_catalog(data_dir: Path | None) -> Catalog:
    """The downloaded catalog in ``data_dir`` when there is a valid one, else the bundled one. Never raises:
    a damaged file is logged and ignored, because pricing must not stop the proxy from starting."""
    if data_dir is None:
        return bundled_catalog()
    path = data_dir / CATALOG_FILE
    try:
        st = path.stat()
    except OSError:
        return bundled_catalog()
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _loaded.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        catalog = catalog_from_file(path)
    except (CatalogError, OSError) as exc:
        log.warning("ignoring the downloaded price catalog, using the bundled %s: %s", CATALOG_VERSION, exc)
        catalog = bundled_catalog()
    _loaded[path] = (stamp, catalog)
    return catalog


def remember_catalog(path: Path, catalog: Catalog) -> Catalog:
    """Cache a catalog just installed at ``path`` (`load_catalog` would otherwise parse it again); its provenance
    now names ``path``."""
    catalog = replace(catalog, meta={**catalog.meta, "path": str(path)})
    st = path.stat()
    _loaded[path] = ((st.st_mtime_ns, st.st_size), catalog)
    return catalog


class PriceBook:
    """Cost of a request per provider and model; lookups are cached, so pricing a request is cheap."""

    def __init__(self, providers: dict[str, ProviderPreset], overrides: dict[str, Price] | None = None, *,
                 data_dir: Path | None = None, catalog: Catalog | None = None) -> None:
        """``data_dir``: where ``sidecar prices update`` saved a catalog (None = the bundled one only)."""
        self._providers = providers
        self._overrides = overrides or {}
        self.catalog = catalog or load_catalog(data_dir)
        self._models: dict[tuple[str, str], tuple[Any, Any] | None] = {}
        self._rate_cache: dict[tuple[str, str], tuple[Any, _Rates | None]] = {}

    @property
    def source(self) -> str:
        return self.catalog.label

    def cost_breakdown(self, provider: str, model: str, usage: Usage) -> tuple[float | None, dict[str, Any] | None]:
        """The cost and how it was computed: tokens × rate per meter, and where the rates came from.

        Kept on each record so a number can be audited later (prices change; the record keeps the rates used).
        """
        override = self._overrides.get(f"{provider}/{model}")
        if override is not None:
            rates = _Rates(override.input, override.output, override.cache_read, override.cache_write, float("inf"))
            return rates.cost(usage), rates.breakdown(usage, OVERRIDE_SOURCE)
        found = self._lookup(provider, model)
        if found is None:
            return None, None
        rates = self._rates(provider, model, found[1])
        if rates is not None and usage.input < rates.tier_start:
            breakdown = rates.breakdown(usage, self.source)
            return breakdown["total_usd"], breakdown
        total = self.cost(provider, model, usage)
        return total, None if total is None else {"source": self.source, "total_usd": total,
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

    def describe(self, provider: str, model: str) -> dict[str, Any] | None:
        """The rates this book would use now, and where they come from (for ``sidecar prices show``).

        USD per million tokens; ``cache_read`` / ``cache_write`` None means those tokens pay the input rate.
        """
        override = self._overrides.get(f"{provider}/{model}")
        if override is not None:
            return {"provider": provider, "model": model, "source": OVERRIDE_SOURCE, "kind": "override",
                    "catalog_model": None, "input": override.input, "output": override.output,
                    "cache_read": override.cache_read, "cache_write": override.cache_write, "tiers": []}
        found = self._lookup(provider, model)
        if found is None:
            return None
        catalog_provider, model_info = found
        price = model_info.get_prices(datetime.now(tz=UTC))
        out: dict[str, Any] = {"provider": provider, "model": model, "source": self.source, "kind": self.catalog.kind,
                               "catalog_provider": catalog_provider.id, "catalog_model": model_info.id, "tiers": []}
        for meter, fld in (("input", "input_mtok"), ("output", "output_mtok"), ("cache_read", "cache_read_mtok"),
                           ("cache_write", "cache_write_mtok")):
            v = getattr(price, fld, None)
            if v is not None and hasattr(v, "base"):  # TieredPrices
                out["tiers"] += [{"meter": meter, "from_input_tokens": t.start, "usd_per_mtok": float(t.price)}
                                 for t in v.tiers]
                v = v.base
            out[meter] = None if v is None else float(v)
        if isinstance(model_info.prices, list) and len(model_info.prices) > 1:
            out["note"] = "the catalog lists dated or time-of-day prices; these are the ones in force now"
        return out

    def _rates(self, provider: str, model: str, model_info: Any) -> _Rates | None:
        """Flat per-million rates, cached for the UTC day: the catalog's own calculation costs ~70 µs a request,
        and pricing runs for every request. Tiered prices use their base rate below the first tier; above
        it (and for anything unusual) the catalog computes the cost itself. Prices that change with the time of
        day (DeepSeek's off-peak discount) are resolved again on every call, never cached for the day."""
        day = int(time.time() // 86400)  # the UTC day, without making a datetime per request
        key = (provider, model)
        cached = self._rate_cache.get(key)
        if cached is not None and cached[0] == day:
            return cached[1]
        now = datetime.now(tz=UTC)
        rates: _Rates | None = None
        try:
            price = model_info.get_prices(now)
            tier_start = float("inf")
            values = {}
            for fld in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"):
                v = getattr(price, fld, None)
                if v is not None and hasattr(v, "base"):  # TieredPrices
                    if v.tiers:
                        tier_start = min(tier_start, min(t.start for t in v.tiers))
                    v = v.base
                values[fld] = None if v is None else float(v)
            if values["input_mtok"] is not None and values["output_mtok"] is not None:
                rates = _Rates(values["input_mtok"], values["output_mtok"], values["cache_read_mtok"],
                               values["cache_write_mtok"], tier_start)
        except Exception:  # an unusual catalog entry: leave it to calc_price
            rates = None
        if not _time_of_day_priced(model_info):
            self._rate_cache[key] = (day, rates)
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
            found = self.catalog.snapshot.find_provider_model(model, None, catalog_id, None)
        except LookupError:
            found = None
        self._models[key] = found
        return found


def _time_of_day_priced(model_info: Any) -> bool:
    prices = model_info.prices
    return isinstance(prices, list) and any(isinstance(c.constraint, types.TimeOfDateConstraint) for c in prices)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


@dataclass(frozen=True, slots=True)
class _Rates:
    input: float
    output: float
    cache_read: float | None
    cache_write: float | None
    tier_start: float
    """Input tokens from which a higher tier applies (inf when flat)."""

    def cost(self, usage: Usage) -> float:
        return _cost_from_override(self, usage)

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


def _cost_from_override(price: Price | _Rates, usage: Usage) -> float:
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
