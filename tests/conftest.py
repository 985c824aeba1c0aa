"""Shared fixtures: fake upstream providers and a real sidecar, both over HTTP on 127.0.0.1.

Every test runs with XDG dirs in a temp folder, so nothing touches the developer's real config,
data or keyring files.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from sidecar.app import build_app
from sidecar.config import Config, config_from_dict
from sidecar.fake_upstream import FakeUpstream
from sidecar.keys import KeyStore, MemoryKeyStore
from sidecar.server import start_server
from sidecar.store import RequestStore

os.environ.pop("NO_COLOR", None)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "data"))


@dataclass
class Upstreams:
    openai: FakeUpstream
    anthropic: FakeUpstream
    gemini: FakeUpstream


KEYS = {"openai": "sk-test-openai-0001", "anthropic": "sk-ant-test-0002", "gemini": "AIza-test-0003"}


@pytest.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    ups = Upstreams(
        FakeUpstream("openai", expect_key=KEYS["openai"]),
        FakeUpstream("anthropic", expect_key=KEYS["anthropic"]),
        FakeUpstream("gemini", expect_key=KEYS["gemini"]),
    )
    for u in (ups.openai, ups.anthropic, ups.gemini):
        await u.start()
    yield ups
    for u in (ups.openai, ups.anthropic, ups.gemini):
        await u.close()


def config_for(ups: Upstreams, data_dir: Path, extra: dict | None = None) -> Config:
    raw = {"providers": {
        "openai": {"base_url": ups.openai.base_url},
        "anthropic": {"base_url": ups.anthropic.base_url},
        "gemini": {"base_url": ups.gemini.base_url},
    }}
    for section, values in (extra or {}).items():
        raw.setdefault(section, {}).update(values)
    return replace(config_from_dict(raw), data_dir=data_dir)


@dataclass
class Sidecar:
    url: str
    config: Config
    store: RequestStore
    keys: KeyStore
    app: object


async def start_sidecar(config: Config, keys: KeyStore) -> tuple[Sidecar, object]:
    store = RequestStore(config.db_path, body_cap=config.body_cap_bytes)
    app = build_app(config, keys=keys, store=store)
    runner, url = await start_server(app, "127.0.0.1", 0)
    return Sidecar(url, config, store, keys, app), runner


@pytest.fixture
async def sidecar(upstreams: Upstreams, tmp_path: Path) -> AsyncIterator[Sidecar]:
    sc, runner = await start_sidecar(config_for(upstreams, tmp_path / "data"), MemoryKeyStore(KEYS))
    yield sc
    await runner.cleanup()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked secret_service need tests/run's private GNOME Keyring; skip them elsewhere.

    CI sets SIDECAR_REQUIRE_SECRET_SERVICE so a missing keyring fails loudly instead of skipping.
    """
    if os.environ.get("SIDECAR_SECRET_SERVICE") or os.environ.get("SIDECAR_REQUIRE_SECRET_SERVICE"):
        return
    skip = pytest.mark.skip(reason="needs a Secret Service keyring: run the suite with `bash tests/run`")
    for item in items:
        if "secret_service" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def secret_service() -> Iterator[None]:
    """The real Secret Service backend, with this suite's provider entries cleaned up afterwards."""
    import keyring

    backend = keyring.get_keyring()
    names = [type(b).__module__ for b in getattr(backend, "backends", [backend])]
    assert any("SecretService" in n for n in names), f"expected the Secret Service backend, got {backend!r}"
    yield
    for provider in ("openai", "anthropic", "gemini", "groq", "canary"):
        try:
            keyring.delete_password("llm-sidecar", provider)
        except keyring.errors.PasswordDeleteError:
            pass
