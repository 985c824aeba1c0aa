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
