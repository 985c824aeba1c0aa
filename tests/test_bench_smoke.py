"""The benchmark command keeps working: a quick run end to end, every side sane. No timing is asserted.

`bench/run.py --quick` starts the fake provider, the floor relay, a real `sidecar serve` and the load worker on
127.0.0.1, checks one request per path through each proxy before measuring (a broken setup fails loudly there),
and prints issue 8's table. This test only checks that it ran through and that no request failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| figure | sidecar | floor: bare aiohttp relay |" in done.stdout
    assert "!!" not in done.stdout + done.stderr, done.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    for scenario in ("pt_1", "tr_1", "pt_16", "pt_32", "tr_ttft", "s128_pt", "s128_tr"):
        for side in ("direct", "floor", "sidecar"):
            figures = results[scenario][side]
            assert figures["errors"] == 0 and figures["ok"] > 0, (scenario, side, figures)


def test_adapter_microbenchmarks_run() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "adapters_micro.py"), "--repeat", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 2 + 2 * 12  # two header rows, then every client × provider pair twice
