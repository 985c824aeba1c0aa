"""The sidecar's overhead, side by side with direct calls to the same fake provider (issue 8's table).

    .venv/bin/python bench/run.py            # the full run (a few minutes)
    .venv/bin/python bench/run.py --quick    # a reduced run (< 1 minute), e.g. as a CI smoke
    .venv/bin/python bench/run.py --json out.json
    .venv/bin/python bench/run.py --quick --litellm [--litellm-venv ~/.cache/litellm-bench]   # + LiteLLM's proxy
    .venv/bin/python bench/run.py --quick --profile /tmp/sidecar.prof   # then: python -m pstats /tmp/sidecar.prof

Processes besides this one, all on 127.0.0.1: the fake provider (`fake_upstream.py`), a real
``python -m sidecar serve`` (temp config pointing the openai and anthropic presets at the fake, temp data dir,
keys from the bench-only keyring backend in `bench_keyring.py`), the load generator (`load.py`, one pooled
aiohttp session) and, with ``--litellm``, LiteLLM's proxy pointed at the same fake (`litellm_side.py`). Every
scenario runs in rounds that alternate the sides (and which goes first), so machine noise hits all of them;
latencies are pooled per side. CPU and memory come from /proc (Linux only). Every child process is killed on exit.

Not measured here: the 10-minute memory soak (`soak.py`). These are benchmarks, not tests: nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from litellm_side import LITELLM_VERSION, LiteLLM  # noqa: E402
from load import headers_for, pct, request_body  # noqa: E402
from procs import CpuMeter, Loader, RssSampler, free_port, http, rss_mb, stop, wait_healthy  # noqa: E402,F401
from report import render, table  # noqa: E402

OPENAI_MODEL = "gpt-4o-mini"        # routed to the openai preset by prefix: pass-through
ANTHROPIC_MODEL = "claude-sonnet-4-5"  # routed to the anthropic preset: translated for an OpenAI client

PROFILES = {
    # rounds; requests per round per side: non-stream @1 (pass-through, translated), @16, @32, TTFT streams @1,
    # CPU streams (and chunks: low/high), 128-stream requests per round, sidecar starts
    "quick": dict(rounds=2, n1=150, n16=800, n32=1500, nttft=60, cpu_streams=24, cpu_lo=10, cpu_hi=110,
                  cpu_reps=1, n128=128, rounds128=1, starts=2),
    "full": dict(rounds=6, n1=400, n16=2000, n32=3000, nttft=200, cpu_streams=64, cpu_lo=10, cpu_hi=210,
                 cpu_reps=2, n128=256, rounds128=3, starts=5),
}
LITELLM_SHARE = 5
"""LiteLLM serves ~1/25 of the sidecar's requests per second: it gets 1/5 of each round's requests (at least 60,
and at least one per concurrent slot) so a run still ends in minutes."""


class Bench:
    def __init__(self, quick: bool, log, profile: Path | None = None,  # noqa: ANN001
                 litellm: dict[str, Any] | None = None) -> None:
        self.p = PROFILES["quick" if quick else "full"]
        self.profile = profile.resolve() if profile else None
        self.log = log
        self.tmp = tempfile.TemporaryDirectory(prefix="sidecar-bench-")
        t = Path(self.tmp.name)
        self.fake_port = free_port()
        self.fake_url = f"http://127.0.0.1:{self.fake_port}"
        self.config = t / "config.toml"
        self.config.write_text(
            "[providers.openai]\n"
            f'base_url = "{self.fake_url}/v1"\n'
            "[providers.anthropic]\n"
            f'base_url = "{self.fake_url}"\n'
            "[store]\n"
            f'data_dir = "{t / "data"}"\n'
        )
        self.env = dict(os.environ)
        self.env.update(
            PYTHON_KEYRING_BACKEND="bench_keyring.BenchKeyring",
            PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT), self.env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            XDG_CONFIG_HOME=str(t / "xdg-config"), XDG_DATA_HOME=str(t / "xdg-data"),
        )
        self.fake: subprocess.Popen | None = None
        self.sidecar: subprocess.Popen | None = None
        self.floor: subprocess.Popen | None = None
        self.floor_url = ""
        self.loader: Loader | None = None
        self.sidecar_url = ""
        self.litellm = LiteLLM(t, self.fake_url, log, **litellm) if litellm is not None else None
        self.sides = ("direct", "floor", "sidecar", "litellm") if self.litellm else ("direct", "floor", "sidecar")
        """"floor" is `floor_proxy.py`, a bare aiohttp relay: the least a proxy on this stack adds."""
        self.results: dict[str, Any] = {}

    # processes
    def start_fake(self) -> None:
        self.fake = subprocess.Popen([sys.executable, str(HERE / "fake_upstream.py"), "--port", str(self.fake_port)],
                                     cwd=ROOT, stdout=subprocess.DEVNULL)
        wait_healthy(self.fake_url + "/health", self.fake)

    def start_floor(self) -> None:
        port = free_port()
        self.floor = subprocess.Popen([sys.executable, str(HERE / "floor_proxy.py"), "--port", str(port),
                                       "--upstream", self.fake_url], cwd=ROOT, stdout=subprocess.DEVNULL)
        self.floor_url = f"http://127.0.0.1:{port}"
        wait_healthy(self.floor_url + "/health", self.floor)

    def start_sidecar(self, profile: Path | None = None) -> tuple[subprocess.Popen, str, float]:
        port = free_port()
        wrap = ["-m", "cProfile", "-o", str(profile)] if profile else []
        log = open(Path(self.tmp.name) / f"sidecar-{port}.log", "wb")
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *wrap, "-m", "sidecar", "serve", "--config", str(self.config),
                                 "--port", str(port)], cwd=ROOT, env=self.env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url + "/_sidecar/health", proc)
        except RuntimeError:
            stop(proc)
            log.close()
            sys.stderr.write((Path(self.tmp.name) / f"sidecar-{port}.log").read_text()[-3000:])
            raise
        return proc, url, time.perf_counter() - t0

    def fake_shape(self, chunks: int, delay_ms: float) -> None:
        status, _ = http("POST", self.fake_url + "/_fake/config", orjson.dumps({"chunks": chunks, "delay_ms": delay_ms}))
        assert status == 200

    def close(self) -> None:
        if self.loader:
            self.loader.close()
        if self.litellm:
            self.litellm.close()
        stop(self.sidecar)
        stop(self.floor)
        stop(self.fake)
        self.tmp.cleanup()

    # jobs
    def job(self, side: str, kind: str, stream: bool, concurrency: int, requests: int, warmup: int) -> dict[str, Any]:
        """``kind``: "pt" (OpenAI client, OpenAI provider) or "tr" (OpenAI client, Anthropic provider).

        CPU and peak memory are the proxy's: the sidecar's for the direct and sidecar sides (so a direct round
        shows the sidecar idle), the floor relay's and LiteLLM's for theirs."""
        model = OPENAI_MODEL if kind == "pt" else ANTHROPIC_MODEL
        headers = headers_for("openai")
        pid = self.sidecar.pid if self.sidecar else 0
        if side in ("direct", "floor"):  # the floor relays the provider's own format: it translates nothing
            fmt = "openai" if kind == "pt" else "anthropic"
            base = self.fake_url if side == "direct" else self.floor_url
            url = base + ("/v1/chat/completions" if kind == "pt" else "/v1/messages")
            headers = headers_for(fmt)
            if side == "floor":
                assert self.floor is not None
                pid = self.floor.pid
        elif side == "sidecar":
            fmt, url = "openai", self.sidecar_url + "/v1/chat/completions"
        else:
            assert self.litellm is not None
            fmt, url, headers, pid = "openai", self.litellm.url + "/v1/chat/completions", self.litellm.headers, self.litellm.pid
            requests = max(concurrency, min(requests, 60), requests // LITELLM_SHARE)
            warmup = min(warmup, requests)
        job = {"url": url, "body": request_body(fmt, model, stream).decode(), "headers": headers,
               "concurrency": concurrency, "requests": requests, "warmup": warmup, "raw": True}
        assert self.loader and pid
        if self.litellm:
            self.litellm.pause(side != "litellm")
        sampler = RssSampler(pid)
        sampler.start()
        cpu = CpuMeter(pid)
        res = self.loader.run(job)
        res["proxy_cpu_s"] = cpu.elapsed()
        res["proxy_peak_rss_mb"] = sampler.finish()
        if res["errors"]:
            self.log(f"  !! {side} {kind}: {res['errors']} errors, e.g. {res['first_errors'][:1]}")
        return res

    def interleaved(self, name: str, kind: str, stream: bool, concurrency: int, requests: int,
                    rounds: int) -> dict[str, Any]:
        per: dict[str, list[dict[str, Any]]] = {side: [] for side in self.sides}
        warmup = max(10, concurrency * 2)
        for r in range(rounds):
            order = self.sides[r % len(self.sides):] + self.sides[:r % len(self.sides)]
            for side in order:
                per[side].append(self.job(side, kind, stream, concurrency, requests, warmup))
        out: dict[str, Any] = {}
        for side, runs in per.items():
            lat = [x for run in runs for x in run["latencies"]]
            ttft = [x for run in runs for x in run["ttfts"]]
            ok = sum(run["ok"] for run in runs)
            out[side] = {
                "ok": ok, "errors": sum(run["errors"] for run in runs),
                "p50": pct(lat, 50), "p99": pct(lat, 99), "ttft_p50": pct(ttft, 50) if ttft else None,
                "rps": statistics.median(run["rps"] for run in runs),
                "rps_rounds": [round(run["rps"]) for run in runs],
                "peak_rss_mb": max(run["proxy_peak_rss_mb"] for run in runs),
                "cpu_per_req_ms": sum(run["proxy_cpu_s"] for run in runs) / max(ok, 1) * 1000,
            }
        self.log(f"  {name}: " + " | ".join(
            f"{side} p50 {o['p50']:.3f} ms p99 {o['p99']:.3f} ms {o['rps']:.0f}/s"
            + (f" (CPU {o['cpu_per_req_ms']:.2f} ms/req)" if side != "direct" else "") for side, o in out.items()))
        self.results[name] = out
        return out

    def cpu_per_chunk(self, name: str, kind: str) -> dict[str, Any]:
        """Marginal proxy CPU per streamed chunk: (CPU at many chunks - CPU at few) / extra chunks."""
        p = self.p
        out: dict[str, Any] = {}
        for side in self.sides[1:]:
            streams = p["cpu_streams"] if side != "litellm" else max(8, p["cpu_streams"] // 2)
            cpu: dict[int, list[float]] = {p["cpu_lo"]: [], p["cpu_hi"]: []}
            for _ in range(p["cpu_reps"]):
                for chunks in (p["cpu_lo"], p["cpu_hi"]):
                    self.fake_shape(chunks, 1.0)
                    cpu[chunks].append(self.job(side, kind, True, 8, streams, 0)["proxy_cpu_s"])
            lo, hi = statistics.mean(cpu[p["cpu_lo"]]), statistics.mean(cpu[p["cpu_hi"]])
            out[side] = {"per_chunk_us": (hi - lo) / (streams * (p["cpu_hi"] - p["cpu_lo"])) * 1e6,
                         "per_stream_ms": lo / streams * 1000, "cpu_s": {str(k): v for k, v in cpu.items()}}
            self.log(f"  {name} {side}: {out[side]['per_chunk_us']:.1f} us/chunk marginal, "
                     f"{out[side]['per_stream_ms']:.2f} ms per {p['cpu_lo']}-chunk stream")
        self.results[name] = out
        return out

    def run(self) -> dict[str, Any]:
        p = self.p
        self.results["load_before"] = os.getloadavg()
        self.log("starting the fake provider and measuring `sidecar serve` start-up ...")
        self.start_fake()
        starts = []
        for _ in range(p["starts"]):
            proc, _url, took = self.start_sidecar()
            starts.append(took)
            stop(proc)
        self.results["startup_s"] = {"sidecar": {"median": statistics.median(starts), "all": starts}}
        self.sidecar, self.sidecar_url, _ = self.start_sidecar(self.profile)
        self.start_floor()
        time.sleep(0.3)
        self.results["rss_idle_mb"] = {"sidecar": rss_mb(self.sidecar.pid), "floor": rss_mb(self.floor.pid)}
        if self.litellm:
            self.results["litellm_version"] = self.litellm.install()
            self.results["litellm_share"] = f"1/{LITELLM_SHARE}"
            self.log(f"starting LiteLLM {self.results['litellm_version']} ...")
            took = self.litellm.start()
            self.results["startup_s"]["litellm"] = {"median": took, "all": [took]}
            time.sleep(0.3)
            self.results["rss_idle_mb"]["litellm"] = rss_mb(self.litellm.pid)
        self.loader = Loader(ROOT)
        self.sanity()

        self.log("non-streamed, 1 in flight ...")
        self.fake_shape(10, 0)
        self.interleaved("pt_1", "pt", False, 1, p["n1"], p["rounds"])
        self.interleaved("tr_1", "tr", False, 1, p["n1"], p["rounds"])
        self.log("non-streamed pass-through, 16 and 32 in flight ...")
        self.interleaved("pt_16", "pt", False, 16, p["n16"], p["rounds"])
        self.interleaved("pt_32", "pt", False, 32, p["n32"], p["rounds"])
        self.results["rss_after_load_mb"] = rss_mb(self.sidecar.pid)
        self.log("streamed translated, time to first byte, 1 in flight (5 chunks 2 ms apart) ...")
        self.fake_shape(5, 2.0)
        self.interleaved("tr_ttft", "tr", True, 1, p["nttft"], p["rounds"])
        self.log("proxy CPU per streamed chunk (chunks 1 ms apart, 8 streams in flight) ...")
        self.cpu_per_chunk("cpu_tr", "tr")
        self.cpu_per_chunk("cpu_pt", "pt")
        self.log("128 streams at once, 50 chunks 5 ms apart ...")
        self.fake_shape(50, 5.0)
        self.interleaved("s128_pt", "pt", True, 128, p["n128"], p["rounds128"])
        self.interleaved("s128_tr", "tr", True, 128, p["n128"], p["rounds128"])
        time.sleep(0.5)
        self.results["rss_end_mb"] = rss_mb(self.sidecar.pid)
        self.results["load_after"] = os.getloadavg()
        return self.results

    def sanity(self) -> None:
        """One request per path through each proxy, so a broken setup fails loudly instead of benchmarking 4xx."""
        for side in self.sides[1:]:
            for kind in ("pt", "tr"):
                for stream in (False, True):
                    res = self.job(side, kind, stream, 1, 1, 0)
                    if res["errors"] or not res["bytes"]:
                        raise RuntimeError(f"sanity check failed ({side}, {kind}, stream={stream}): "
                                           f"{res['first_errors']}")


def _loop_name() -> str:
    """The event loop `sidecar serve` runs on here (uvloop unless missing or SIDECAR_NO_UVLOOP=1)."""
    sys.path.insert(0, str(ROOT))
    from sidecar.loop import loop_name

    return loop_name()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a reduced run (< 1 minute)")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--profile", type=Path, metavar="OUT.prof",
                    help="run the benchmarked sidecar under cProfile, stats written here (figures are then inflated)")
    ap.add_argument("--litellm", action="store_true",
                    help="also measure LiteLLM's proxy (installed into its own virtualenv; needs PyPI once)")
    ap.add_argument("--litellm-venv", type=Path, metavar="DIR",
                    help="keep LiteLLM's virtualenv here between runs (default: a throwaway one in the temp dir)")
    ap.add_argument("--litellm-version", default=LITELLM_VERSION, help=f"default {LITELLM_VERSION}")
    args = ap.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("bench/run.py reads /proc for CPU and memory: Linux only", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    litellm = {"version": args.litellm_version, "venv": args.litellm_venv} if args.litellm else None
    bench = Bench(args.quick, log, args.profile, litellm)
    try:
        results = bench.run()
    finally:
        bench.close()
    rows, notes = table(results)
    cpu = platform.processor() or platform.machine()
    load = "/".join(f"{x:.1f}" for x in results["load_before"]) + " → " + "/".join(f"{x:.1f}" for x in results["load_after"])
    header = (f"llm-sidecar overhead, {dt.date.today().isoformat()}, {os.cpu_count()} cores ({cpu}), "
              f"Python {platform.python_version()}, sidecar on {_loop_name()}, {'quick' if args.quick else 'full'} run "
              f"in {time.monotonic() - t0:.0f} s, load average (1/5/15 min) {load}")
    print(header)
    print()
    print(render(rows))
    print()
    for n in notes:
        print(f"- {n}")
    if args.json:
        args.json.write_text(orjson.dumps({"header": header, "results": results, "rows": rows},
                                          option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
