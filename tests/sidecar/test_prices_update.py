"""``sidecar prices update`` / ``show``: a catalog served over real HTTP on 127.0.0.1, validated before it replaces
the saved one; and no network access when the sidecar starts.

The served catalog is the bundled one written back out in genai-prices' raw ``data.json`` shape (`raw_catalog`),
with one price changed, so a successful update shows up as exactly that model's price moving.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import hashlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from genai_prices import types as gp_types
from genai_prices.data import providers as bundled_providers

from adapters.ir import Usage
from adapters.presets import PRESETS
from conftest import KEYS, Upstreams, config_for, start_sidecar
from sidecar import cmd_prices
from sidecar.config import config_from_dict
from sidecar.keys import MemoryKeyStore
from sidecar.pricing import CATALOG_FILE, CATALOG_VERSION, CatalogError, PriceBook, load_catalog

ROOT = Path(__file__).resolve().parents[2]
MINI = Usage(input=1000, output=500, cache_read=400)
BUNDLED_MINI_USD = (600 * 0.15 + 400 * 0.075 + 500 * 0.60) / 1e6  # gpt-4o-mini list price: 0.15 / 0.075 / 0.60
UPDATED_MINI_USD = (600 * 0.50 + 400 * 0.075 + 500 * 2.00) / 1e6  # after the served catalog's change: 0.50 / 2.00


def _raw(value: Any) -> Any:
    """A genai-prices object as the raw JSON its catalog file holds (field names, ``or``/``and`` clauses)."""
    if isinstance(value, gp_types.ModelPrice):
        return {k: _raw(v) for k, v in value.__dict__.items() if v is not None and not k.startswith("_")}
    if dataclasses.is_dataclass(value):
        return {f.name.rstrip("_"): _raw(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.name.startswith("_") and getattr(value, f.name) is not None}
    if isinstance(value, list):
        return [_raw(v) for v in value]
    if isinstance(value, dict):
        return {k: _raw(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


@functools.cache
def _bundled_raw() -> bytes:
    return orjson.dumps(_raw(bundled_providers))


def raw_catalog(edit: Callable[[list[dict[str, Any]]], None] | None = None) -> bytes:
    data = orjson.loads(_bundled_raw())
    if edit is not None:
        edit(data)
    return orjson.dumps(data)


def model_entry(data: list[dict[str, Any]], provider: str, model: str) -> dict[str, Any]:
    p = next(p for p in data if p["id"] == provider)
    return next(m for m in p["models"] if m["id"] == model)


def dearer_mini(data: list[dict[str, Any]]) -> None:
    model_entry(data, "openai", "gpt-4o-mini")["prices"].update(input_mtok=0.5, output_mtok=2.0)


class CatalogServer:
    """Serves ``body`` at /data.json (or ``status``), counting requests."""

    def __init__(self) -> None:
        self.body = b"[]"
        self.status = 200
        self.hits = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(status=self.status, body=self.body, content_type="application/json",
                            headers={"Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT", "ETag": '"v42"'})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/data.json", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/data.json"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[CatalogServer]:
    s = CatalogServer()
    await s.start()
    yield s
    await s.close()


async def test_update_installs_the_catalog_and_prices_change(server: CatalogServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert PriceBook(PRESETS, data_dir=data_dir).cost("openai", "gpt-4o-mini", MINI) == pytest.approx(BUNDLED_MINI_USD)
    server.body = raw_catalog(dearer_mini)

    result = await cmd_prices.update(data_dir, server.url)

    assert server.hits == 1
    assert result.path == data_dir / CATALOG_FILE and result.path.exists()
    assert result.previous.kind == "bundled" and result.catalog.kind == "downloaded"
    assert result.changed == ["openai/gpt-4o-mini"]
    meta = result.catalog.meta
    assert meta["source_url"] == server.url and meta["last_modified"] == "Tue, 01 Dec 2026 10:00:00 GMT"
    assert meta["etag"] == '"v42"' and meta["sha256"] == hashlib.sha256(server.body).hexdigest()
    assert [p.name for p in data_dir.iterdir()] == [CATALOG_FILE]  # no temporary file left behind

    book = PriceBook(PRESETS, data_dir=data_dir)
    assert book.catalog.kind == "downloaded" and book.source.startswith("genai-prices catalog downloaded ")
    assert book.cost("openai", "gpt-4o-mini", MINI) == pytest.approx(UPDATED_MINI_USD, rel=1e-12)
    total, breakdown = book.cost_breakdown("openai", "gpt-4o-mini", MINI)
    assert total == pytest.approx(UPDATED_MINI_USD) and breakdown["source"] == book.source
    shown = book.describe("openai", "gpt-4o-mini")
    assert (shown["input"], shown["output"], shown["cache_read"], shown["kind"]) == (0.5, 2.0, 0.075, "downloaded")
    # other models price exactly as before; the bundled catalog itself is untouched
    sonnet = Usage(input=1000, output=100)
    assert book.cost("anthropic", "claude-sonnet-4-5", sonnet) == pytest.approx((1000 * 3 + 100 * 15) / 1e6)
    assert PriceBook(PRESETS).cost("openai", "gpt-4o-mini", MINI) == pytest.approx(BUNDLED_MINI_USD)
    assert PriceBook(PRESETS).source == CATALOG_VERSION


def _missing_anthropic(data: list[dict[str, Any]]) -> None:
    data[:] = [p for p in data if p["id"] != "anthropic"]


def _bad_price(data: list[dict[str, Any]]) -> None:
    model_entry(data, "openai", "gpt-4o-mini")["prices"] = {"input_mtok": "cheap"}


BAD_DOWNLOADS = [
    pytest.param(200, lambda: raw_catalog()[:5000], "not JSON", id="truncated"),
    pytest.param(200, lambda: b'{"providers": []}', "JSON array", id="not-a-list"),
    pytest.param(200, lambda: b"[]", "non-empty", id="empty"),
    pytest.param(200, lambda: b'[{"id": "openai"}]', "does not parse", id="wrong-shape"),
    pytest.param(200, lambda: raw_catalog(_bad_price), "does not parse", id="bad-price"),
    pytest.param(200, lambda: raw_catalog(_missing_anthropic), "anthropic", id="incomplete"),
    pytest.param(200, lambda: raw_catalog() + b', "format": "x"', "not JSON", id="trailing-junk"),
    pytest.param(503, lambda: raw_catalog(), "HTTP 503", id="server-error"),
]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The saved-catalog file of a good update (with the dearer gpt-4o-mini), made once for the module."""
    data_dir = tmp_path_factory.mktemp("installed")
    cmd_prices.install(data_dir, raw_catalog(dearer_mini), {"source_url": "http://127.0.0.1/first"})
    return (data_dir / CATALOG_FILE).read_bytes()


@pytest.mark.parametrize("status,body,reason", BAD_DOWNLOADS)
async def test_a_bad_download_is_refused_and_the_old_catalog_kept(server: CatalogServer, tmp_path: Path,
                                                                 installed: bytes, status: int,
                                                                 body: Callable[[], bytes], reason: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / CATALOG_FILE).write_bytes(installed)

    server.status, server.body = status, body()
    with pytest.raises((cmd_prices.UpdateError, CatalogError), match=reason):
        await cmd_prices.update(data_dir, server.url)

    assert server.hits == 1
    assert (data_dir / CATALOG_FILE).read_bytes() == installed
    assert [p.name for p in data_dir.iterdir()] == [CATALOG_FILE]
    assert PriceBook(PRESETS, data_dir=data_dir).cost("openai", "gpt-4o-mini", MINI) == pytest.approx(UPDATED_MINI_USD)


async def test_an_oversized_download_is_refused(server: CatalogServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cmd_prices, "MAX_BYTES", 1000)
    server.body = raw_catalog()
    with pytest.raises(cmd_prices.UpdateError, match="not a price catalog"):
        await cmd_prices.update(tmp_path, server.url)
    assert not (tmp_path / CATALOG_FILE).exists()


async def test_an_unwritable_data_dir_is_a_clear_error(server: CatalogServer, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    server.body = raw_catalog()
    with pytest.raises(cmd_prices.UpdateError, match="could not save the catalog in"):
        await cmd_prices.update(not_a_dir, server.url)


def test_a_damaged_saved_catalog_falls_back_to_the_bundled_one(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / CATALOG_FILE).write_bytes(b'{"format": "llm-sidecar price catalog 1", "data": [')
    catalog = load_catalog(tmp_path)
    assert catalog.kind == "bundled"
    assert "ignoring the downloaded price catalog" in caplog.text
    assert PriceBook(PRESETS, data_dir=tmp_path).cost("openai", "gpt-4o-mini", MINI) == pytest.approx(BUNDLED_MINI_USD)


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", *args, cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_cli_updates_and_shows_the_source(server: CatalogServer, tmp_path: Path) -> None:
    """The real command line, as a subprocess: ``[store] data_dir`` is where the catalog goes."""
    data_dir = tmp_path / "store"
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\ndata_dir = "{data_dir}"\n')
    server.body = raw_catalog(dearer_mini)

    code, out, err = await _cli("prices", "update", "--config", str(config), env={"SIDECAR_PRICES_URL": server.url})
    assert code == 0, err
    assert server.url in out and "openai/gpt-4o-mini" in out and str(data_dir / CATALOG_FILE) in out

    code, out, err = await _cli("--config", str(config), "prices", "show", "openai/gpt-4o-mini", env={})
    assert code == 0, err
    assert "    input       $0.5\n" in out and "    output      $2 " in out
    assert f"downloaded catalog from {server.url}" in out and "Last-Modified Tue, 01 Dec 2026" in out
    assert server.hits == 1


async def test_show_and_update_report_sources_and_failures(server: CatalogServer, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The same commands in-process (update runs its own event loop, so in a thread beside the server's)."""
    config = replace(config_from_dict({"prices": {"openai/gpt-4o": {"input": 1.0, "output": 4.0}}}),
                     data_dir=tmp_path / "data")
    assert cmd_prices.run_show(config, "openai/gpt-4o-mini") == 0
    out = capsys.readouterr().out
    assert "    input       $0.15\n" in out and f"bundled catalog ({CATALOG_VERSION}" in out

    server.body = raw_catalog(dearer_mini)
    private_mirror = server.url.replace("http://", "http://me:pa55word@") + "?token=sekrit-123"
    assert await asyncio.to_thread(cmd_prices.run_update, config, private_mirror) == 0
    out = capsys.readouterr().out
    assert "1 model price(s) differ from the previous catalog" in out and f"prices updated from {server.url} (Last-Modified" in out
    saved = (config.data_dir / CATALOG_FILE).read_bytes()
    for secret in ("pa55word", "sekrit-123"):  # a mirror's credentials are neither printed nor saved
        assert secret not in out and secret.encode() not in saved

    assert cmd_prices.run_show(config, "openai/gpt-4o", as_json=True) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown["catalog"]["kind"] == "downloaded" and shown["catalog"]["source_url"] == server.url
    assert shown["prices"] == [{
        "provider": "openai", "model": "gpt-4o", "source": "config [prices] override", "kind": "override",
        "catalog_model": None, "input": 1.0, "output": 4.0, "cache_read": None, "cache_write": None, "tiers": []}]

    server.body = b"<html>rate limited</html>"
    assert await asyncio.to_thread(cmd_prices.run_update, config, server.url) == 1
    err = capsys.readouterr().err
    assert "prices not updated: not JSON" in err and f"still using: downloaded catalog from {server.url}" in err

    assert cmd_prices.run_show(config, "openai/no-such-model-xyz") == 1
    assert "no price known" in (out := capsys.readouterr().out) and "unknown, never as $0" in out
    assert cmd_prices.run_show(config, "nosuch/model") == 1
    assert "not served by any configured provider" in capsys.readouterr().err
    assert server.hits == 2


async def test_starting_the_sidecar_never_fetches_prices(upstreams: Upstreams, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With a downloaded catalog present, start a sidecar and price a request while every way to fetch prices
    raises and name resolution refuses anything but loopback: the saved file is read, the network is not."""
    import genai_prices

    data_dir = tmp_path / "data"
    cmd_prices.install(data_dir, raw_catalog(dearer_mini), {"source_url": "test", "downloaded_at": "2026-12-01T00:00Z"})
    touched: list[str] = []

    def forbidden(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            touched.append(name)
            raise AssertionError(f"{name} called while starting or serving")
        return call

    monkeypatch.setattr(cmd_prices, "fetch", forbidden("cmd_prices.fetch"))
    monkeypatch.setattr(cmd_prices, "update", forbidden("cmd_prices.update"))
    monkeypatch.setattr(genai_prices.UpdatePrices, "start", forbidden("UpdatePrices.start"))
    monkeypatch.setattr(genai_prices.UpdatePrices, "fetch", forbidden("UpdatePrices.fetch"))
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1", None):
            touched.append(f"getaddrinfo {host}")
            raise socket.gaierror(f"test forbids resolving {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    sc, runner = await start_sidecar(config_for(upstreams, data_dir), MemoryKeyStore(KEYS))
    try:
        async with aiohttp.ClientSession() as http:
            body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            async with http.post(sc.url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
        await sc.store.flush()
        [rec] = sc.store.recent(1)
    finally:
        await runner.cleanup()  # type: ignore[attr-defined]
    assert touched == []
    assert rec["cost_usd"] is not None


async def test_a_restarted_sidecar_prices_with_the_downloaded_catalog(upstreams: Upstreams, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cmd_prices.install(data_dir, raw_catalog(dearer_mini), {"source_url": "test", "downloaded_at": "2026-12-01T00:00Z"})
    sc, runner = await start_sidecar(config_for(upstreams, data_dir), MemoryKeyStore(KEYS))
    try:
        async with aiohttp.ClientSession() as http:
            body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            async with http.post(sc.url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
        await sc.store.flush()
        [rec] = sc.store.recent(1)
    finally:
        await runner.cleanup()  # type: ignore[attr-defined]
    assert rec["cost_breakdown"]["source"] == "genai-prices catalog downloaded 2026-12-01", (
        "sidecar/app.py must build its PriceBook with data_dir=config.data_dir")
    # the fake reports prompt 8 (4 of them cached) and completion 7, at the downloaded 0.50 / 0.075 / 2.00
    assert rec["cost_usd"] == pytest.approx((4 * 0.50 + 4 * 0.075 + 7 * 2.00) / 1e6, rel=1e-12)


def test_parse_providers_accepts_the_bundled_catalog_written_out() -> None:
    """The raw shape `raw_catalog` writes is the one genai-prices publishes: it round-trips exactly."""
    from sidecar.pricing import parse_providers

    parsed = parse_providers(orjson.loads(raw_catalog()))
    now = dt.datetime.now(dt.UTC)
    assert len(parsed) == len(bundled_providers)
    for a, b in zip(bundled_providers, parsed, strict=True):
        assert [m.id for m in a.models] == [m.id for m in b.models]
        assert all(ma.get_prices(now) == mb.get_prices(now) for ma, mb in zip(a.models, b.models, strict=True))
