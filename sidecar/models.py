"""``GET /v1/models``: one list across every configured provider that has a key (or needs none).

Each provider is asked in its own format, concurrently, with a short timeout; a provider that fails is
left out (and logged) rather than failing the list. Answers are cached for a minute: SDKs and agents
list models often, and providers rate-limit the endpoint too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import orjson

from adapters.presets import ProviderPreset
from sidecar.config import Config
from sidecar.keys import KeyCache, KeyStoreError
from sidecar.upstream import forward_headers, models_url

log = logging.getLogger("sidecar.models")

CACHE_SECONDS = 60.0
LIST_TIMEOUT = aiohttp.ClientTimeout(total=5)


class ModelCatalog:
    def __init__(self, config: Config, keys: KeyCache, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.keys = keys
        self.session = session
        self._cached: tuple[float, list[dict[str, Any]]] | None = None
        self._lock = asyncio.Lock()

    async def list(self) -> list[dict[str, Any]]:
        """``[{"id": "provider/model", "provider", "model", "created", "display_name"}]``, aliases first."""
        async with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            results = await asyncio.gather(*(self._provider_models(p) for p in self.config.providers.values()))
            models = [
                {"id": name, "provider": "alias", "model": name, "created": 0, "display_name": f"alias → {', '.join(a.targets)}"}
                for name, a in self.config.models.items()
            ]
            for found in results:
                models.extend(found)
            self._cached = (time.monotonic(), models)
            return models

    async def _provider_models(self, provider: ProviderPreset) -> list[dict[str, Any]]:
        key = None
        if provider.needs_key:
            try:
                key = await self.keys.get(provider.id)
            except KeyStoreError:
                return []
            if not key:
                return []
        try:
            headers = forward_headers({}, provider, key)
            async with self.session.get(models_url(provider), headers=headers, timeout=LIST_TIMEOUT) as resp:
                if resp.status != 200:
                    log.info("listing %s models: HTTP %s", provider.id, resp.status)
                    return []
                body = orjson.loads(await resp.read())
        except (aiohttp.ClientError, OSError, TimeoutError, orjson.JSONDecodeError) as exc:
            log.info("listing %s models failed: %s", provider.id, type(exc).__name__)
            return []
        return [_entry(provider.id, m) for m in _raw_models(provider.adapter, body)]


def _raw_models(adapter: str, body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    items = body.get("models") if adapter == "gemini" else body.get("data")
    return [m for m in items or [] if isinstance(m, dict)]


def _entry(provider_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    model = str(raw.get("id") or raw.get("name") or "")
    model = model.removeprefix("models/")
    created = raw.get("created")
    return {
        "id": f"{provider_id}/{model}",
        "provider": provider_id,
        "model": model,
        "created": created if isinstance(created, int) else 0,
        "display_name": raw.get("display_name") or raw.get("displayName") or model,
    }


def openai_shape(models: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": m["id"], "object": "model", "created": m["created"], "owned_by": m["provider"]} for m in models
    ]}


def anthropic_shape(models: list[dict[str, Any]]) -> dict[str, Any]:
    data = [{"type": "model", "id": m["id"], "display_name": m["display_name"],
             "created_at": "1970-01-01T00:00:00Z"} for m in models]
    return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def gemini_shape(models: list[dict[str, Any]]) -> dict[str, Any]:
    return {"models": [
        {"name": f"models/{m['id']}", "displayName": m["display_name"], "version": "",
         "supportedGenerationMethods": ["generateContent", "streamGenerateContent"]} for m in models
    ]}
