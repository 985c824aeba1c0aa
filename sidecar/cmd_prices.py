"""``sidecar prices update`` and ``sidecar prices show MODEL``.

``update`` is the one place the sidecar fetches prices from the network, and it runs only when the user types
it: it downloads the catalog genai-prices publishes (the same ``data.json`` its own ``UpdatePrices`` polls, by
default from GitHub; ``--url`` or ``SIDECAR_PRICES_URL`` point it at a mirror), validates it with genai-prices'
own types, and only then replaces the saved catalog atomically. A download that fails, does not parse or looks
incomplete changes nothing. A running sidecar reads the catalog when it starts, so restart it to apply.

``show`` prints the rates the sidecar would meter a model at, and where they come from: a ``[prices]``
override, the downloaded catalog (with its URL and date) or the catalog bundled with the installed package.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
from genai_prices.update_prices import DEFAULT_UPDATE_URL

from sidecar import __version__
from sidecar.config import Config
from sidecar.pricing import (CATALOG_FILE, CATALOG_FORMAT, Catalog, CatalogError, PriceBook, catalog_from_file,
                             load_catalog, remember_catalog)

URL_ENV = "SIDECAR_PRICES_URL"
MAX_BYTES = 64 * 1024 * 1024
"""The full catalog is ~1.5 MB; anything near this cap is not a price list."""
TIMEOUT_S = 60.0


class UpdateError(Exception):
    """The catalog was not replaced; the message says why (no secrets involved: the URL is public data)."""


@dataclass(frozen=True, slots=True)
class UpdateResult:
    path: Path
    catalog: Catalog
    previous: Catalog
    changed: list[str]
    """``provider/model`` of catalog models whose current prices differ from the previous catalog's."""


def default_url() -> str:
    return os.environ.get(URL_ENV) or DEFAULT_UPDATE_URL


def shown_url(url: str) -> str:
    """The URL as printed and saved: without user info, query or fragment, where a private mirror's token lives."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


async def fetch(url: str, *, timeout: float = TIMEOUT_S) -> tuple[bytes, dict[str, str]]:
    """GET ``url`` (proxy variables honoured); the body, capped at `MAX_BYTES`, and its Last-Modified / ETag."""
    if not url.startswith(("http://", "https://")):
        raise UpdateError(f"the catalog URL must start with http:// or https://, got {shown_url(url)!r}")
    headers = {"accept": "application/json", "user-agent": f"llm-sidecar/{__version__} (sidecar prices update)"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), trust_env=True) as session:
            async with session.get(url, headers=headers) as resp:
                if resp.status != 200:
                    raise UpdateError(f"{shown_url(url)} answered HTTP {resp.status}")
                chunks, size = [], 0
                async for chunk in resp.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise UpdateError(f"{shown_url(url)} sent more than {MAX_BYTES // 2**20} MiB: not a price catalog")
                    chunks.append(chunk)
                info = {k: resp.headers[h] for k, h in (("last_modified", "Last-Modified"), ("etag", "ETag"))
                        if h in resp.headers}
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__  # not str(exc): it can quote the full URL
        raise UpdateError(f"could not download {shown_url(url)}: {reason}") from None
    return b"".join(chunks), info


def catalog_file_bytes(raw: bytes, meta: dict[str, Any]) -> bytes:
    """The saved file: provenance first, then the downloaded array verbatim under ``data`` (so its sha256 can be
    checked against the source). ``raw`` must already be known to be a JSON array."""
    head = orjson.dumps({"format": CATALOG_FORMAT, **meta})
    return head[:-1] + b',"data":' + raw.strip() + b"}"


def check_json(raw: bytes) -> None:
    """The cheap first gate: a JSON array, before anything is parsed into genai-prices' types."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpdateError(f"not JSON ({exc})") from None
    if not isinstance(data, list):
        raise UpdateError("not a genai-prices catalog: expected a JSON array of providers")


def install(data_dir: Path, raw: bytes, meta: dict[str, Any]) -> Catalog:
    """Validate ``raw`` and make it the saved catalog atomically; raises `UpdateError` and leaves the old one.

    The bytes validated are the bytes installed: the temporary file is parsed exactly as the sidecar will parse
    it at start, then renamed over the old one (``os.replace`` is atomic on one filesystem)."""
    check_json(raw)
    path = data_dir / CATALOG_FILE
    tmp = data_dir / f".{CATALOG_FILE}.{os.getpid()}.tmp"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(catalog_file_bytes(raw, meta))
            f.flush()
            os.fsync(f.fileno())
        try:
            catalog = catalog_from_file(tmp)
        except CatalogError as exc:
            raise UpdateError(str(exc).replace(str(tmp), "the download")) from None
        os.replace(tmp, path)
    except OSError as exc:
        raise UpdateError(f"could not save the catalog in {data_dir}: {exc.strerror or exc}") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    _fsync_dir(data_dir)
    return remember_catalog(path, catalog)


async def update(data_dir: Path, url: str | None = None) -> UpdateResult:
    """Download, validate and install the catalog; the previous one stays unless everything succeeded."""
    url = url or default_url()
    raw, headers = await fetch(url)
    check_json(raw)
    previous = await asyncio.to_thread(load_catalog, data_dir)
    meta = {"source_url": shown_url(url), "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            **headers, "sha256": sha256(raw).hexdigest(), "bytes": len(raw)}
    catalog = await asyncio.to_thread(install, data_dir, raw, meta)
    return UpdateResult(data_dir / CATALOG_FILE, catalog, previous, _changed(previous, catalog))


def _changed(old: Catalog, new: Catalog) -> list[str]:
    """Models whose prices in force now differ between two catalogs (new models and removals count too)."""
    now = datetime.now(UTC)

    def prices(c: Catalog) -> dict[str, Any]:
        return {f"{p.id}/{m.id}": m.get_prices(now) for p in c.snapshot.providers for m in p.models}

    before, after = prices(old), prices(new)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not possible on every platform (Windows); the rename itself is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------- the command


def run_prices(args: argparse.Namespace, config: Config) -> int:
    if args.prices_command == "update":
        return run_update(config, args.url)
    return run_show(config, args.model, as_json=args.json)


def run_update(config: Config, url: str | None = None) -> int:
    try:
        result = asyncio.run(update(config.data_dir, url))
    except (UpdateError, CatalogError) as exc:
        kept = load_catalog(config.data_dir)
        print(f"prices not updated: {exc}", file=sys.stderr)
        print(f"still using: {describe_source(kept)}", file=sys.stderr)
        return 1
    meta = result.catalog.meta
    providers = result.catalog.snapshot.providers
    print(f"prices updated from {meta['source_url']}"
          + (f" (Last-Modified {meta['last_modified']})" if meta.get("last_modified") else ""))
    print(f"  {len(providers)} providers, {sum(len(p.models) for p in providers)} models; saved to {result.path}")
    if result.changed:
        shown = ", ".join(result.changed[:8]) + (", ..." if len(result.changed) > 8 else "")
        print(f"  {len(result.changed)} model price(s) differ from the previous catalog "
              f"({result.previous.label}): {shown}")
    else:
        print(f"  no price differs from the previous catalog ({result.previous.label})")
    print("  a running sidecar reads the catalog at start: restart it to apply")
    return 0


def run_show(config: Config, model: str, *, as_json: bool = False) -> int:
    """The rates for ``model`` (provider/model, bare name or alias: resolved as the proxy routes it)."""
    from sidecar.routing import RouteError, Router

    try:
        targets = Router(config).resolve(model)
    except RouteError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    book = PriceBook(config.providers, config.prices, data_dir=config.data_dir)
    infos = [book.describe(t.provider.id, t.model) or {"provider": t.provider.id, "model": t.model, "kind": None}
             for t in targets]
    if as_json:
        catalog = {"kind": book.catalog.kind, "label": book.catalog.label, **book.catalog.meta}
        sys.stdout.write(orjson.dumps({"catalog": catalog, "prices": infos}, option=orjson.OPT_INDENT_2).decode()
                         + "\n")
    else:
        for info in infos:
            sys.stdout.write(render(info, book.catalog, config))
    return 0 if all(i["kind"] for i in infos) else 1


def render(info: dict[str, Any], catalog: Catalog, config: Config) -> str:
    name = f"{info['provider']}/{info['model']}"
    if not info["kind"]:
        return (f"{name}: no price known (not in the price catalog, {catalog.label}, and no [prices.\"{name}\"] "
                "override); its cost is recorded as unknown, never as $0\n")
    lines = [name + (f"  (catalog model {info['catalog_provider']}/{info['catalog_model']})"
                     if info.get("catalog_model") else "")]
    inp = info["input"]
    rows = [("input", f"${_usd(inp)}"),
            ("cache read", f"${_usd(info['cache_read'])}" if info["cache_read"] is not None
             else f"${_usd(inp)} (no cache price: input rate)"),
            ("cache write", f"${_usd(info['cache_write'])}" if info["cache_write"] is not None
             else f"${_usd(inp)} (no cache price: input rate)"),
            ("output", f"${_usd(info['output'])} (reasoning tokens included)")]
    lines.append("  USD per million tokens:")
    lines += [f"    {label:<12}{value}" for label, value in rows]
    for start in sorted({t["from_input_tokens"] for t in info["tiers"]}):
        rates = ", ".join(f"{t['meter'].replace('_', ' ')} ${_usd(t['usd_per_mtok'])}"
                          for t in info["tiers"] if t["from_input_tokens"] == start)
        lines.append(f"    from {start:,} input tokens: {rates} (for the whole request)")
    if info.get("note"):
        lines.append(f"  note: {info['note']}")
    if info["kind"] == "override":
        lines.append(f"  source      [prices.\"{name}\"] in {config.source or 'the config'}")
    else:
        lines.append(f"  source      {describe_source(catalog)}")
    return "\n".join(lines) + "\n"


def describe_source(catalog: Catalog) -> str:
    if catalog.kind == "bundled":
        return (f"bundled catalog ({catalog.label}, shipped with the installed package); "
                "`sidecar prices update` fetches the latest")
    meta = catalog.meta
    text = f"downloaded catalog from {meta.get('source_url')}, downloaded {meta.get('downloaded_at')}"
    if meta.get("last_modified"):
        text += f" (Last-Modified {meta['last_modified']})"
    return text + f", saved in {meta.get('path')}"


def _usd(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"
