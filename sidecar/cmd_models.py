"""``sidecar models``: the model ids a client can send, with the list price the sidecar will meter at.

Asks the running proxy first (it holds the warm key cache and the same one-minute list cache clients
see at ``GET /v1/models``); with no proxy running it lists in-process with the keyring's keys, so the
command also works before the first ``sidecar serve``. Providers without a key are left out either
way, because a model the sidecar cannot reach is not one a client can use.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
import urllib.error
import urllib.request
from typing import Any

import orjson

from adapters.ir import Usage
from sidecar.config import Config
from sidecar.pricing import PriceBook

PER_MILLION = 1_000_000


def run_models(config: Config, url: str, *, provider: str | None = None, fmt: str = "table") -> int:
    """Print the model list; exit code 0 even when it is empty (that is an answer, with a hint)."""
    models, source = _from_proxy(url)
    if models is None:
        models, source = asyncio.run(_in_process(config)), "keyring (no proxy running)"
    if provider:
        models = [m for m in models if m["provider"] in (provider, "alias")]
    rows = _rows(config, models)
    sys.stdout.write(render(rows, fmt))
    if fmt == "table":
        if not rows:
            sys.stdout.write("no models: no provider has a key yet (`sidecar keys set PROVIDER`), "
                             "or none answered its model list\n")
        sys.stdout.write(f"\n{len(rows)} models, listed by {source}; prices are list prices per million tokens\n")
    return 0


def _from_proxy(url: str) -> tuple[list[dict[str, Any]] | None, str]:
    token = os.environ.get("SIDECAR_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        # The Anthropic shape carries display names; the OpenAI one does not.
        headers["anthropic-version"] = "2023-06-01"
        with urllib.request.urlopen(urllib.request.Request(f"{url}/v1/models", headers=headers), timeout=15) as resp:
            body = orjson.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None, ""
    models = []
    for item in body.get("data", []) if isinstance(body, dict) else []:
        model_id = str(item.get("id", ""))
        prov, _, name = model_id.partition("/")
        is_alias = not name
        models.append({"id": model_id, "provider": "alias" if is_alias else prov, "model": name or model_id,
                       "display_name": item.get("display_name") or model_id})
    return models, f"the proxy at {url}"


async def _in_process(config: Config) -> list[dict[str, Any]]:
    import aiohttp

    from sidecar.keys import KeyCache, KeyringStore
    from sidecar.models import ModelCatalog

    async with aiohttp.ClientSession() as session:
        return await ModelCatalog(config, KeyCache(KeyringStore()), session).list()


def _rows(config: Config, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    book = PriceBook(config.providers, config.prices, data_dir=config.data_dir)
    rows = []
    for m in models:
        row = {"id": m["id"], "provider": m["provider"], "display_name": m.get("display_name") or m["id"],
               "input_per_m": None, "output_per_m": None}
        if m["provider"] != "alias":
            row["input_per_m"] = book.cost(m["provider"], m["model"], Usage(input=PER_MILLION))
            row["output_per_m"] = book.cost(m["provider"], m["model"], Usage(output=PER_MILLION))
        elif m["id"] in config.models:
            row["display_name"] = "alias → " + ", ".join(config.models[m["id"]].targets)
        rows.append(row)
    return rows


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """Table for people, csv/json for scripts (prices as numbers, null when unknown)."""
    if fmt == "json":
        return orjson.dumps({"models": rows}, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["id", "provider", "display_name", "input_per_m", "output_per_m"])
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    width = max([len(r["id"]) for r in rows] + [5])
    lines = [f"{'MODEL':<{width}}  {'PROVIDER':<10} {'IN $/M':>8} {'OUT $/M':>8}  NAME"]
    for r in rows:
        alias = r["provider"] == "alias"
        lines.append(f"{r['id']:<{width}}  {r['provider']:<10} {'-' if alias else _price(r['input_per_m']):>8} "
                     f"{'-' if alias else _price(r['output_per_m']):>8}  {r['display_name']}")
    return "\n".join(lines) + "\n"


def _price(value: float | None) -> str:
    return "?" if value is None else f"{value:.3f}".rstrip("0").rstrip(".") if value else "0"
