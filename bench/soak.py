"""Soak: moderate mixed load on a real `sidecar serve` for a while, watching for leaks.

    .venv/bin/python bench/soak.py [--minutes 10] [--interval 30]

Reuses the benchmark's fake provider, load generator and sidecar start-up (`bench/run.py`). In each interval it
runs a batch of mixed traffic — non-streamed and streamed, pass-through and translated, 8 in flight — then
samples the sidecar process's resident memory, open file descriptors and threads from /proc. It prints one row
per sample and, at the end, the growth from the first to the last sample. Bounded: everything on 127.0.0.1,
stops after the given minutes, and kills its processes on exit. A script to run, not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import Loader, rss_mb  # noqa: E402
from run import Bench  # noqa: E402

MIX = [("pt", False), ("pt", True), ("tr", False), ("tr", True)]


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--batch", type=int, default=400, help="requests per kind per interval")
    args = ap.parse_args()
    bench = Bench(quick=True, log=lambda m: print(m, flush=True))
    try:
        bench.start_fake()
        bench.fake_shape(chunks=20, delay_ms=1)
        bench.sidecar, bench.sidecar_url, _ = bench.start_sidecar()
        bench.loader = Loader()
        pid = bench.sidecar.pid
        end = time.monotonic() + args.minutes * 60
        samples = []
        total = errors = 0
        print(f"{'t (s)':>6} {'requests':>9} {'errors':>6} {'RSS MB':>7} {'fds':>4} {'threads':>7}", flush=True)
        started = time.monotonic()
        while True:
            batch_end = time.monotonic() + args.interval
            while time.monotonic() < batch_end:
                for kind, stream in MIX:
                    res = bench.job("sidecar", kind, stream, concurrency=8, requests=args.batch // 4, warmup=0)
                    total += args.batch // 4
                    errors += res["errors"]
            sample = (time.monotonic() - started, total, errors, rss_mb(pid), fds(pid), threads(pid))
            samples.append(sample)
            print(f"{sample[0]:6.0f} {sample[1]:9d} {sample[2]:6d} {sample[3]:7.1f} {sample[4]:4d} {sample[5]:7d}",
                  flush=True)
            if time.monotonic() >= end:
                break
        first, last = samples[0], samples[-1]
        print(f"\n{total} requests, {errors} errors in {last[0]:.0f}s; RSS {first[3]:.1f} → {last[3]:.1f} MB "
              f"(max {max(s[3] for s in samples):.1f}), fds {first[4]} → {last[4]}, threads {first[5]} → {last[5]}")
        return 0 if errors == 0 else 1
    finally:
        bench.close()


if __name__ == "__main__":
    raise SystemExit(main())
