"""`sidecar spend` as a subprocess against a request log this test fills; no sidecar runs.

Unknown prices must read as unknown (an empty CSV cell, null in JSON, "unknown" in the table), never $0.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar.records import RequestRecord
from sidecar.store import RequestStore

ROOT = Path(__file__).resolve().parents[2]


def ts(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rec(i: int, days_ago: int, provider: str, model: str, cost: float | None, client: str | None,
        tokens: tuple[int, int] = (100, 50), source: str = "reported", status: int = 200) -> RequestRecord:
    return RequestRecord(id=f"r{i}", ts=ts(days_ago), inbound="openai_chat", requested_model=model,
                         provider=provider, model=model, status=status, input_tokens=tokens[0],
                         output_tokens=tokens[1], cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0,
                         cost_usd=cost, usage_source=source, client=client, latency_ms=1.0)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\ndata_dir = "{data}"\n')
    store = RequestStore(data / "requests.db")
    store.open()
    for r in [
        rec(1, 0, "openai", "gpt-4o-mini", 0.25, "agent"),
        rec(2, 0, "openai", "gpt-4o-mini", 0.50, "agent", source="estimated"),
        rec(3, 0, "local", "llama-x", None, "script"),  # tokens, no price: unknown
        rec(4, 1, "anthropic", "claude-haiku-4-5", 1.00, "agent"),
        rec(5, 1, "local", "llama-x", None, None),
        rec(6, 1, "openai", "gpt-4o-mini", None, "agent", tokens=(0, 0), status=502),  # an error, no usage
        rec(7, 40, "openai", "gpt-4o-mini", 9.0, "agent"),  # outside --days 30
    ]:
        store.add(r)
    store.close()
    return tmp_path


def spend(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sidecar", "--config", str(tmp / "config.toml"), "spend", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_json_by_model(data_dir):
    out = spend(data_dir, "--by", "model", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["by"] == "model" and doc["days"] == 30 and doc["prices"].startswith("genai-prices ")
    rows = {r["model"]: r for r in doc["rows"]}
    assert rows["openai/gpt-4o-mini"]["cost_usd"] == pytest.approx(0.75)
    assert rows["openai/gpt-4o-mini"]["requests"] == 3 and rows["openai/gpt-4o-mini"]["errors"] == 1
    assert rows["openai/gpt-4o-mini"]["estimated_requests"] == 1
    assert rows["anthropic/claude-haiku-4-5"]["cost_usd"] == 1.0
    assert rows["local/llama-x"]["cost_usd"] is None and rows["local/llama-x"]["unpriced_requests"] == 2


def test_csv_by_day_leaves_unknown_empty(data_dir):
    out = spend(data_dir, "--by", "day", "--format", "csv", "--days", "2")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    today, yesterday = ts(0)[:10], ts(1)[:10]
    assert [r["day"] for r in rows] == [yesterday, today]
    assert float(rows[1]["cost_usd"]) == pytest.approx(0.75) and rows[1]["unpriced_requests"] == "1"
    assert rows[1]["input_tokens"] == "300"


def test_table_by_client_and_provider(data_dir):
    out = spend(data_dir, "--by", "client")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["client", "requests"]
    agent = next(line for line in lines if line.startswith("agent"))
    assert agent.endswith("$1.7500")
    script = next(line for line in lines if line.startswith("script"))
    assert script.endswith("unknown")  # never $0
    assert next(line for line in lines if line.startswith("total")).endswith("$1.7500 + 2 unpriced")
    assert "estimated usage" in lines[-1] and "genai-prices" in lines[-1]
    out = spend(data_dir, "--by", "provider", "--days", "1")
    local = next(line for line in out.stdout.splitlines() if line.startswith("local"))
    assert local.endswith("unknown")


def test_no_request_log_yet_is_a_clear_error(tmp_path):
    (tmp_path / "config.toml").write_text(f'[store]\ndata_dir = "{tmp_path / "nothing"}"\n')
    out = spend(tmp_path)
    assert out.returncode == 1 and "no request log" in out.stderr and out.stdout == ""


def test_bad_arguments(data_dir):
    assert spend(data_dir, "--by", "week").returncode == 2
    out = spend(data_dir, "--days", "0")
    assert out.returncode == 2 and "--days" in out.stderr
