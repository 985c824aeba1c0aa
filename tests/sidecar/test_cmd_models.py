"""`sidecar models`: the list a client can use, from the running proxy or, with none running, in-process.

The CLI runs as a real subprocess; the proxy and the fake providers run on this test's event loop.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from conftest import Sidecar, Upstreams
from sidecar.fake_upstream import FakeUpstream
from test_pause import cli


async def test_lists_the_running_proxys_models_with_list_prices(sidecar: Sidecar, upstreams: Upstreams) -> None:
    port = str(urlsplit(sidecar.url).port)
    code, out, err = await cli("models", "--port", port, "--format", "json")
    assert code == 0, err
    rows = {r["id"]: r for r in orjson.loads(out)["models"]}
    for fake in (upstreams.openai, upstreams.anthropic, upstreams.gemini):
        for model in fake.models:
            assert f"{fake.kind}/{model}" in rows
    mini = rows["openai/gpt-4o-mini"]
    assert mini["provider"] == "openai"
    assert (mini["input_per_m"], mini["output_per_m"]) == (0.15, 0.6)  # genai-prices' list price, per million

    code, out, _ = await cli("models", "--port", port, "--provider", "anthropic")
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines()[1:] if line.strip() and not line[0].isdigit()]
    assert listed and all(m.startswith("anthropic/") for m in listed[:-1] if "/" in m), out
    assert "listed by the proxy at" in out


async def test_without_a_proxy_it_lists_in_process_and_shows_aliases(tmp_path: Path) -> None:
    async with FakeUpstream("openai") as local:  # a keyless local server, like Ollama
        await _list_in_process(local, tmp_path)


async def _list_in_process(local: FakeUpstream, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: no proxy there
        s.bind(("127.0.0.1", 0))
        free = str(s.getsockname()[1])
    config = tmp_path / "config.toml"
    config.write_text(
        f'[providers.openai]\nbase_url = "{local.base_url}"\nkey = false\n'
        '[models.fast]\ntargets = ["openai/gpt-4o-mini"]\n'
    )
    code, out, err = await cli("--config", str(config), "models", "--port", free, "--format", "csv")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "id,provider,display_name,input_per_m,output_per_m"
    assert "fast,alias,alias → openai/gpt-4o-mini,," in lines
    assert any(line.startswith("openai/gpt-4o-mini,openai,") for line in lines)
    assert [(r.method, r.path) for r in local.received] == [("GET", "/v1/models")]
    assert "authorization" not in local.received[0].headers  # `key = false`: nothing to inject
