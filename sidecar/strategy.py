"""Ordering an alias's targets by its strategy: ``order``, ``lowest_latency``, ``lowest_cost`` or ``weighted``.

These answer the questions users ask when choosing a provider: which is fastest for me right now (measured
from this sidecar's own recent traffic, not a benchmark), which is cheapest at my volume (from the price
catalog for this request's expected tokens). Failover still walks the rest of the list in that order.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from adapters.ir import Usage
from sidecar.config import ModelAlias
from sidecar.health import HealthBook
from sidecar.pricing import PriceBook
from sidecar.routing import Target

DEFAULT_EXPECTED_OUTPUT = 500
"""Output tokens assumed for pricing when the request sets no maximum (a typical chat answer)."""


def order_targets(
    targets: list[Target], alias: ModelAlias | None, *, health: HealthBook, prices: PriceBook,
    input_bytes: int, max_tokens: int | None, rand: Callable[[], float] = random.random,
) -> list[Target]:
    if alias is None or alias.strategy == "order" or len(targets) < 2:
        return targets
    if alias.strategy == "lowest_latency":
        # Unmeasured targets go first (in config order) so every target gets measured; then fastest first.
        def latency_key(t: Target) -> tuple[int, float]:
            ttft = health.ttft(t.provider.id, t.model)
            return (0, 0.0) if ttft is None else (1, ttft)
        return sorted(targets, key=latency_key)
    if alias.strategy == "lowest_cost":
        # ~4 bytes of JSON per token is rough, but the same for every target, so the order is right.
        expected = Usage(input=max(input_bytes // 4, 1), output=max_tokens or DEFAULT_EXPECTED_OUTPUT)

        def cost_key(t: Target) -> tuple[int, float]:
            cost = prices.cost(t.provider.id, t.model, expected)
            return (1, 0.0) if cost is None else (0, cost)  # unknown prices last, never assumed free
        return sorted(targets, key=cost_key)
    # weighted: a random order in which each target leads with probability proportional to its weight
    # (Efraimidis–Spirakis keys), so the rest of the list is still a sensible failover order.
    weights = alias.weights or (1.0,) * len(targets)
    keyed = [(rand() ** (1.0 / w) if w > 0 else -1.0, i) for i, w in enumerate(weights)]
    return [targets[i] for _, i in sorted(keyed, key=lambda ki: (-ki[0], ki[1]))]  # ties keep config order
