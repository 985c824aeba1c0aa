"""Which upstream targets serve a model name: pure decisions, no I/O.

Model addressing (design.md): ``provider/model`` goes to that provider; a ``[models.NAME]`` alias goes
through its targets in order; a bare model name goes to the provider that serves it, by the
provider's known name prefixes first (``claude-`` → anthropic) and then by the genai-prices catalog.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache

from genai_prices import data_snapshot

from adapters.presets import ProviderPreset
from sidecar.config import Config


@dataclass(frozen=True, slots=True)
class Target:
    provider: ProviderPreset
    model: str
    """The model name as the provider knows it (what is sent upstream)."""

    @property
    def label(self) -> str:
        return f"{self.provider.id}/{self.model}"


class RouteError(Exception):
    """No target can serve the request; carries the status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Router:
    def __init__(self, config: Config) -> None:
        self.providers = config.providers
        self.aliases = config.models
        self._bare: dict[str, ProviderPreset | None] = {}

    def resolve(self, requested: str) -> list[Target]:
        """Targets to try, in order. Raises `RouteError` (404) naming what is configured."""
        if not requested or not isinstance(requested, str):
            raise RouteError(400, "the request names no model")
        alias = self.aliases.get(requested)
        if alias is not None:
            targets = []
            for ref in alias.targets:
                pid, model = ref.split("/", 1)
                targets.append(Target(self.providers[pid], model))
            return targets
        pid, sep, rest = requested.partition("/")
        if sep and rest and pid in self.providers:
            return [Target(self.providers[pid], rest)]
        provider = self._provider_for_bare(requested)
        if provider is not None:
            return [Target(provider, requested)]
        raise RouteError(404, self._not_found_message(requested))

    def _provider_for_bare(self, model: str) -> ProviderPreset | None:
        if model in self._bare:
            return self._bare[model]
        found = None
        lowered = model.lower()
        for provider in self.providers.values():
            if any(lowered.startswith(p) for p in provider.model_prefixes):
                found = provider
                break
        if found is None:
            for provider in self.providers.values():
                if provider.needs_key and model in _catalog_models(provider.genai_prices_id or provider.id):
                    found = provider
                    break
        self._bare[model] = found
        return found

    def _not_found_message(self, requested: str) -> str:
        names = list(self.aliases)
        for provider in self.providers.values():
            names += [f"{provider.id}/{m}" for m in _catalog_models(provider.genai_prices_id or provider.id)]
        close = difflib.get_close_matches(requested, names, n=3, cutoff=0.6)
        msg = (
            f"model {requested!r} is not served by any configured provider. Ask for provider/model "
            f"(providers: {', '.join(sorted(self.providers))})"
        )
        if self.aliases:
            msg += f" or an alias ({', '.join(sorted(self.aliases))})"
        if close:
            msg += f". Did you mean: {', '.join(close)}?"
        return msg


@lru_cache(maxsize=64)
def _catalog_models(catalog_provider_id: str) -> frozenset[str]:
    """Model ids the pricing catalog lists for a provider (empty when it has none)."""
    for provider in data_snapshot.get_snapshot().providers:
        if provider.id == catalog_provider_id:
            return frozenset(m.id for m in provider.models)
    return frozenset()
