"""Regenerate the README's screenshot of the traffic view from the real demo, headless.

    .venv/bin/python tests/tui/make_screenshot.py [OUTPUT.svg] [--seed N] [--rows N] [--size 120x32]

Starts what `sidecar demo` starts (simulated providers with realistic latency and faults, a real
sidecar, the traffic generator; seeded, and recording into a temporary data dir so neither the user's
config nor their history shows), attaches the TUI with Textual's `run_test` at a fixed size, waits
until the traffic table holds enough finished rows (including a failover when one comes in time), and
writes Textual's own SVG export of the screen. Not a test: the picture changes with every run (times,
ports, latencies); what is fixed is how it is made.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from sidecar.config import config_from_dict
from sidecar.demo import start_stack, traffic, tui_token
from tui.app import SidecarApp
from tui.widgets.traffic_table import TrafficTable

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "screenshots" / "traffic.svg"
WAIT_S = 60.0
"""Give up waiting for the wanted rows after this long and take the picture anyway."""


async def make(output: Path, *, seed: int, rows: int, size: tuple[int, int], rate: float) -> Path:
    with tempfile.TemporaryDirectory(prefix="sidecar-screenshot-") as tmp:
        config = replace(config_from_dict({}), data_dir=Path(tmp), port=0)
        stack = await start_stack(config, live=True, seed=seed)
        try:
            with tui_token(stack):
                async with traffic(stack, rate=rate, seed=seed):
                    app = SidecarApp(stack.url)
                    async with app.run_test(size=size) as pilot:
                        table = app.screen.query_one(TrafficTable)
                        deadline = time.monotonic() + WAIT_S

                        def ready() -> bool:
                            done = [r for r in app.model.newest(rows) if not r.pending]
                            return (table.row_count >= rows and len(done) >= rows - 4
                                    and any(len(r.attempts) > 1 for r in done))

                        while not ready() and time.monotonic() < deadline:
                            await pilot.pause(0.1)
                        await pilot.pause(0.3)  # one more UI tick so the table shows the latest batch
                        svg = app.export_screenshot(title="llm-sidecar demo")
        finally:
            await stack.close()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(svg, encoding="utf-8")
    return output


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT, help=f"SVG path (default {DEFAULT_OUTPUT})")
    p.add_argument("--seed", type=int, default=2025, help="seeds the fakes and the traffic (default 2025)")
    p.add_argument("--rows", type=int, default=24, help="finished rows to wait for (default 24)")
    p.add_argument("--size", default="120x32", help="terminal COLSxROWS (default 120x32)")
    p.add_argument("--rate", type=float, default=4.0, help="requests per second (default 4)")
    args = p.parse_args(argv)
    cols, _, lines = args.size.partition("x")
    quiet = logging.StreamHandler()
    quiet.setLevel(logging.ERROR)  # the proxy's per-request log lines are not the point here
    logging.getLogger().addHandler(quiet)
    path = asyncio.run(make(args.output, seed=args.seed, rows=args.rows, size=(int(cols), int(lines)), rate=args.rate))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
