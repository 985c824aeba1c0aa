"""Provider rows for the Providers screen: `/health`'s configuration joined with `/stats`'s live
`providers_health` (breaker, cool-down, error rate, measured latency).

No textual import. A provider missing from either side still gets a row (a configured provider
nobody has called yet has no health; health for a provider since removed from the config keeps
its numbers), and every odd value degrades to "unknown", never to a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tui.format import fmt_ms


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    id: str
    adapter: str | None = None
    base_url: str | None = None
    needs_key: bool | None = None
    has_key: bool | None = None
    configured: bool = True
    breaker: str | None = None
    """closed, half_open or open; None when the sidecar has no health for it yet."""
    consecutive_failures: int | None = None
    cooldown_until: str | None = None
    cooldown_reason: str | None = None
    open_until: str | None = None
    recent_attempts: int | None = None
    error_rate: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    ttft_ms_ewma: dict[str, float] = field(default_factory=dict)

    @property
    def key_state(self) -> str:
        """yes / no / unknown (keyring unavailable) / not needed."""
        if self.needs_key is False:
            return "not needed"
        if self.has_key is None:
            return "unknown"
        return "yes" if self.has_key else "no"

    @property
    def breaker_level(self) -> str:
        """Theme colour name: success (closed), warning (half-open or cooling down), error (open)."""
        if self.breaker == "open":
            return "error"
        if self.breaker == "half_open" or self.cooldown_until:
            return "warning"
        return "success" if self.breaker == "closed" else "muted"


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def join(health: dict[str, Any], stats: dict[str, Any]) -> list[ProviderInfo]:
    """One `ProviderInfo` per provider, in the config's order, then health-only ones by name."""
    config: dict[str, dict[str, Any]] = {}
    for p in health.get("providers") or []:
        if isinstance(p, dict) and (pid := _str(p.get("id"))):
            config[pid] = p
    live: dict[str, dict[str, Any]] = {}
    for h in stats.get("providers_health") or []:
        if isinstance(h, dict) and (pid := _str(h.get("provider"))):
            live[pid] = h
    out = []
    for pid in [*config, *sorted(set(live) - set(config))]:
        c, h = config.get(pid, {}), live.get(pid, {})
        ewma = h.get("ttft_ms_ewma")
        failures = _num(h.get("consecutive_failures"))
        attempts = _num(h.get("recent_attempts"))
        out.append(ProviderInfo(
            id=pid,
            adapter=_str(c.get("adapter")),
            base_url=_str(c.get("base_url")),
            needs_key=_bool(c.get("needs_key")),
            has_key=_bool(c.get("has_key")),
            configured=pid in config,
            breaker=_str(h.get("breaker")),
            consecutive_failures=None if failures is None else int(failures),
            cooldown_until=_str(h.get("cooldown_until")),
            cooldown_reason=_str(h.get("cooldown_reason")),
            open_until=_str(h.get("open_until")),
            recent_attempts=None if attempts is None else int(attempts),
            error_rate=_num(h.get("error_rate")),
            latency_ms_p50=_num(h.get("latency_ms_p50")),
            latency_ms_p95=_num(h.get("latency_ms_p95")),
            ttft_ms_ewma={
                str(m): float(v) for m, v in ewma.items() if _num(v) is not None
            } if isinstance(ewma, dict) else {},
        ))  # fmt: skip
    return out


def fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%" if rate >= 0.01 or rate == 0 else "<1%"


def fmt_until(iso: str | None) -> str:
    """`14:02:31` local time for an ISO instant; "-" for none; the raw text if unparsable."""
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return iso


def fmt_breaker(p: ProviderInfo) -> str:
    return {"closed": "closed", "half_open": "half-open", "open": "OPEN"}.get(p.breaker or "", p.breaker or "-")


def fmt_ttft(p: ProviderInfo) -> str:
    """The TTFT EWMA as one cell: the single model's value, or the range over models."""
    values = sorted(p.ttft_ms_ewma.values())
    if not values:
        return "-"
    if len(values) == 1:
        return fmt_ms(values[0])
    return f"{fmt_ms(values[0])}–{fmt_ms(values[-1])}"


# --- the provider page (`GET /_sidecar/providers/{id}`) ---------------------------------------------

Row = tuple[str, str, str]
"""(label, value, level): level is a theme colour name (success, warning, error, muted) or ""."""


@dataclass(frozen=True, slots=True)
class ProviderPage:
    """One provider's page, parsed defensively: a section the sidecar did not send shows as unavailable."""

    info: ProviderInfo
    overview: dict[str, Any] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    models_error: str | None = None
    prices: list[dict[str, Any]] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    catalog: str | None = None
    limits: dict[str, Any] | None = None
    features: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    """Why the page endpoint could not be read (an older sidecar, a network error); `info` then comes from
    `/health` and `/stats` and the other sections are empty."""


def _dicts(v: Any) -> list[dict[str, Any]]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    v = data.get(key)
    return v if isinstance(v, dict) else {}


def parse_page(data: Any, fallback: ProviderInfo) -> ProviderPage:
    """The endpoint's answer as a `ProviderPage`; its overview and health have `/health`'s and `/stats`'s
    shapes, so `join` turns them into the same `ProviderInfo` the providers table shows."""
    if not isinstance(data, dict):
        return ProviderPage(fallback, error="the sidecar sent no provider page")
    overview = {**_section(data, "overview"), "id": fallback.id}
    health = data.get("health")
    infos = join({"providers": [overview]}, {"providers_health": [health] if isinstance(health, dict) else []})
    models, pricing = _section(data, "models"), _section(data, "pricing")
    limits = data.get("limits")
    return ProviderPage(
        info=next((i for i in infos if i.id == fallback.id), fallback),
        overview=overview,
        models=_dicts(models.get("models")),
        models_error=_str(models.get("error")),
        prices=_dicts(pricing.get("models")),
        unpriced=[m for m in pricing.get("unpriced") or [] if isinstance(m, str)],
        catalog=_str(pricing.get("catalog")),
        limits=limits if isinstance(limits, dict) else None,
        features=_dicts(data.get("features")),
    )


def _yes_no(v: Any, yes: str = "yes", no: str = "no") -> tuple[str, str]:
    if v is None:
        return "-", "muted"
    return (yes, "success") if v else (no, "warning")


def overview_rows(page: ProviderPage) -> list[Row]:
    p, o = page.info, page.overview
    key_level = {"yes": "success", "no": "error"}.get(p.key_state, "muted")
    rows: list[Row] = [
        ("adapter", p.adapter or "?", ""),
        ("wire format", _str(o.get("wire_format")) or "-", ""),
        ("base URL", p.base_url or "?", ""),
        ("model list URL", _str(o.get("models_url")) or "-", ""),
        ("key in keyring", p.key_state, key_level),
    ]
    if key_error := _str(o.get("key_error")):
        rows.append(("keyring", key_error, "error"))
    rows += [
        ("key sent as", _str(o.get("auth_header")) or "-", ""),
        ("configured", _str(o.get("origin")) or ("yes" if p.configured else "no (health only)"), ""),
    ]
    if o.get("responses_api") is not None:
        rows.append(("Responses API", "passed through" if o["responses_api"] else "translated to chat", ""))
    if o.get("stream_usage") is not None:
        rows.append(("usage in streams", *_yes_no(o["stream_usage"], "requested", "not requested")))
    prefixes = [x for x in o.get("model_prefixes") or [] if isinstance(x, str)]
    rows.append(("bare model names", ", ".join(f"{x}*" for x in prefixes) if prefixes else "-", ""))
    return rows


def health_rows(p: ProviderInfo) -> list[Row]:
    """The breaker and latency fields; TTFT per model comes from `ttft_rows`."""
    return [
        ("breaker", fmt_breaker(p), p.breaker_level),
        ("consecutive failures", str(p.consecutive_failures) if p.consecutive_failures is not None else "-", ""),
        ("open until", fmt_until(p.open_until), "error" if p.open_until else ""),
        ("cool-down until", fmt_until(p.cooldown_until), "warning" if p.cooldown_until else ""),
        ("cool-down reason", p.cooldown_reason or "-", ""),
        ("recent attempts", str(p.recent_attempts) if p.recent_attempts is not None else "-", ""),
        ("error rate", fmt_rate(p.error_rate), "error" if (p.error_rate or 0) >= 0.5 else ""),
        ("latency p50", fmt_ms(p.latency_ms_p50), ""),
        ("latency p95", fmt_ms(p.latency_ms_p95), ""),
    ]  # fmt: skip


def ttft_rows(p: ProviderInfo) -> list[tuple[str, str]]:
    return [(model, fmt_ms(ms)) for model, ms in sorted(p.ttft_ms_ewma.items())]


def fmt_date(epoch: Any) -> str:
    """`2025-01-31` for a model's `created` epoch; "-" when unknown (0 or missing)."""
    if not isinstance(epoch, (int, float)) or isinstance(epoch, bool) or epoch <= 0:
        return "-"
    try:
        return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return "-"


def model_rows(page: ProviderPage) -> list[tuple[str, str, str]]:
    """(model, display name when it says more than the id, created date)."""
    out = []
    for m in page.models:
        model = _str(m.get("model")) or "?"
        name = _str(m.get("display_name")) or ""
        out.append((model, "" if name == model else name, fmt_date(m.get("created"))))
    return out


def fmt_price(usd_per_mtok: Any) -> str:
    """USD per million tokens in at most 4 significant characters' worth: $2.5, $0.075, $150, $1,250."""
    v = _num(usd_per_mtok)
    if v is None:
        return "-"
    if v == 0:
        return "$0"
    if v >= 1000:
        return f"${v:,.0f}"
    return f"${v:.3g}" if v >= 0.001 else f"${v:.1e}"


def price_rows(page: ProviderPage) -> list[tuple[str, str, str, str, str, str]]:
    """(model, input, output, cache read, cache write, source); a tiered input price is marked `*`."""
    out = []
    for r in page.prices:
        tier = "*" if r.get("tiered") is True else ""
        source = {"override": "config", "catalog": "catalog"}.get(_str(r.get("source")) or "", "?")
        out.append((_str(r.get("model")) or "?", fmt_price(r.get("input")) + tier, fmt_price(r.get("output")),
                    fmt_price(r.get("cache_read")), fmt_price(r.get("cache_write")), source))
    return out


def pricing_summary(page: ProviderPage) -> str:
    parts = ["USD per million tokens", page.catalog or "catalog unknown"]
    if any(r.get("source") == "override" for r in page.prices):
        parts.append("config = [prices] override")
    if any(r.get("tiered") is True for r in page.prices):
        parts.append("* more for long prompts")
    if page.unpriced:
        parts.append(f"no price for {len(page.unpriced)}: " + ", ".join(page.unpriced[:3])
                     + ("…" if len(page.unpriced) > 3 else ""))
    return " · ".join(parts)


def fmt_in(seconds: Any) -> str:
    """`in 1m05s`, `in 12s`, `now`."""
    s = _num(seconds)
    if s is None:
        return ""
    return "now" if s < 0.5 else f"in {fmt_ms(s * 1000)}"


def fmt_count(v: Any) -> str:
    n = _num(v)
    if n is None:
        return "-"
    return f"{n:,.0f}" if n == int(n) else f"{n:,.2f}"


def limit_rows(limits: dict[str, Any] | None) -> list[tuple[str, str, str, str, str, str]]:
    """(quota, limit, remaining, used, resets at, level) per bucket the provider reported."""
    out = []
    for b in _dicts((limits or {}).get("buckets")):
        used = _num(b.get("used_pct"))
        remaining = _num(b.get("remaining"))
        level = "error" if remaining == 0 else "warning" if used is not None and used >= 80 else ""
        resets = fmt_until(_str(b.get("reset_at")))
        if (when := fmt_in(b.get("reset_in_s"))) and resets != "-":
            resets += f" ({when})"
        out.append(((_str(b.get("name")) or "?").replace("_", " "), fmt_count(b.get("limit")), fmt_count(remaining),
                    "-" if used is None else f"{used:.1f}%" if used < 10 else f"{used:.0f}%", resets, level))
    return out


def limits_summary(limits: dict[str, Any] | None) -> str:
    """When the figures were seen and on what answer; or why there are none."""
    if not limits:
        return "no rate-limit headers seen yet: they show after the provider's next answer that carries them"
    age = _num(limits.get("age_s"))
    text = f"seen {fmt_until(_str(limits.get('seen_at')))}"
    if age is not None:
        text += f" ({fmt_ms(age * 1000)} ago)"
    if (status := _num(limits.get("status"))) is not None:
        text += f", on an HTTP {status:.0f} answer"
    if family := _str(limits.get("family")):
        text += f", {family}-style headers"
    return text


def retry_after_text(limits: dict[str, Any] | None) -> str | None:
    if not limits or _str(limits.get("retry_after_at")) is None:
        return None
    return f"{fmt_until(limits['retry_after_at'])} ({fmt_in(limits.get('retry_after_s')) or 'now'})"


FEATURE_LABELS = {"streaming": "streaming", "tools": "tools", "structured_output": "structured output",
                  "vision": "vision (images)"}


def feature_rows(page: ProviderPage) -> list[tuple[str, str, str, str]]:
    """(feature, yes/no, level, how the sidecar sends it)."""
    out = []
    for f in page.features:
        name = _str(f.get("name")) or "?"
        value, level = _yes_no(_bool(f.get("supported")))
        out.append((FEATURE_LABELS.get(name, name.replace("_", " ")), value, level, _str(f.get("detail")) or ""))
    return out
