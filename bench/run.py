"""The sidecar's overhead, side by side with direct calls to the same fake provider (issue 8's table).

    .venv/bin/python bench/run.py            # the full run (a few minutes)
    .venv/bin/python bench/run.py --quick    # a reduced run (< 1 minute), e.g. as a CI smoke
    .venv/bin/python bench/run.py --json out.json
    .venv/bin/python bench/run.py --quick --profile /tmp/sidecar.prof   # then: python -m pstats /tmp/sidecar.prof

Three processes besides this one, all on 127.0.0.1: the fake provider (`fake_upstream.py`), a real
``python -m sidecar serve`` (temp config pointing the openai and anthropic presets at the fake, temp data dir,
keys from the bench-only keyring backend in `bench_keyring.py`), and the load generator (`load.py`, one
pooled aiohttp session). Every scenario runs in rounds alternating direct and proxied traffic (and which side
goes first), so machine noise hits both; latencies are pooled per side. CPU and memory of the sidecar come
from /proc/<pid>/stat and /proc/<pid>/status (Linux only). Every child process is killed on exit.

Not measured: LiteLLM's proxy (the optional comparison of the issue is not implemented) and the 10-minute
memory soak. These are benchmarks, not tests: nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from load import headers_for, pct, request_body  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if http("GET", url, timeout=0.5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def cpu_s(pid: int) -> float:
    """User + system CPU of a whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15 of stat)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(threading.Thread):
    """Peak VmRSS of a process while a job runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            self._done.wait(0.02)

    def finish(self) -> float:
        self._done.set()
        self.join()
        return self.peak


class Loader:
    """``load.py --serve`` in its own process: one JSON job in, one JSON result out."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "load.py"), "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, cwd=ROOT)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(orjson.dumps(job) + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        return orjson.loads(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            stop(self.proc)


# --- the bench -----------------------------------------------------------------------------------

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


class Bench:
    def __init__(self, quick: bool, log, profile: Path | None = None) -> None:  # noqa: ANN001
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
        self.loader: Loader | None = None
        self.sidecar_url = ""
        self.results: dict[str, Any] = {}

    # processes
    def start_fake(self) -> None:
        self.fake = subprocess.Popen([sys.executable, str(HERE / "fake_upstream.py"), "--port", str(self.fake_port)],
                                     cwd=ROOT, stdout=subprocess.DEVNULL)
        wait_healthy(self.fake_url + "/health", self.fake)

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
        stop(self.sidecar)
        stop(self.fake)
        self.tmp.cleanup()

    # jobs
    def job(self, side: str, kind: str, stream: bool, concurrency: int, requests: int, warmup: int) -> dict[str, Any]:
        """``kind``: "pt" (OpenAI client, OpenAI provider) or "tr" (OpenAI client, Anthropic provider)."""
        if side == "direct":
            fmt = "openai" if kind == "pt" else "anthropic"
            url = self.fake_url + ("/v1/chat/completions" if kind == "pt" else "/v1/messages")
        else:
            fmt, url = "openai", self.sidecar_url + "/v1/chat/completions"
        model = OPENAI_MODEL if kind == "pt" else ANTHROPIC_MODEL
        job = {"url": url, "body": request_body(fmt, model, stream).decode(), "headers": headers_for(fmt),
               "concurrency": concurrency, "requests": requests, "warmup": warmup, "raw": True}
        assert self.loader and self.sidecar
        pid = self.sidecar.pid
        sampler = RssSampler(pid)
        sampler.start()
        c0 = cpu_s(pid)
        res = self.loader.run(job)
        res["sidecar_cpu_s"] = cpu_s(pid) - c0
        res["sidecar_peak_rss_mb"] = sampler.finish()
        if res["errors"]:
            self.log(f"  !! {side} {kind}: {res['errors']} errors, e.g. {res['first_errors'][:1]}")
        return res

    def interleaved(self, name: str, kind: str, stream: bool, concurrency: int, requests: int,
                    rounds: int) -> dict[str, Any]:
        per: dict[str, list[dict[str, Any]]] = {"direct": [], "sidecar": []}
        warmup = max(10, concurrency * 2)
        for r in range(rounds):
            order = ("direct", "sidecar") if r % 2 == 0 else ("sidecar", "direct")
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
                "peak_rss_mb": max(run["sidecar_peak_rss_mb"] for run in runs),
                "sidecar_cpu_per_req_ms": sum(run["sidecar_cpu_s"] for run in runs) / max(ok, 1) * 1000,
            }
        self.log(f"  {name}: direct p50 {out['direct']['p50']:.3f} ms p99 {out['direct']['p99']:.3f} ms "
                 f"{out['direct']['rps']:.0f}/s | sidecar p50 {out['sidecar']['p50']:.3f} ms "
                 f"p99 {out['sidecar']['p99']:.3f} ms {out['sidecar']['rps']:.0f}/s "
                 f"(sidecar CPU {out['sidecar']['sidecar_cpu_per_req_ms']:.2f} ms/req)")
        self.results[name] = out
        return out

    def cpu_per_chunk(self, name: str, kind: str) -> dict[str, Any]:
        """Marginal sidecar CPU per streamed chunk: (CPU at many chunks - CPU at few) / extra chunks."""
        p = self.p
        cpu: dict[int, list[float]] = {p["cpu_lo"]: [], p["cpu_hi"]: []}
        for _ in range(p["cpu_reps"]):
            for chunks in (p["cpu_lo"], p["cpu_hi"]):
                self.fake_shape(chunks, 1.0)
                res = self.job("sidecar", kind, True, 8, p["cpu_streams"], 0)
                cpu[chunks].append(res["sidecar_cpu_s"])
        lo, hi = statistics.mean(cpu[p["cpu_lo"]]), statistics.mean(cpu[p["cpu_hi"]])
        extra = p["cpu_streams"] * (p["cpu_hi"] - p["cpu_lo"])
        out = {"per_chunk_us": (hi - lo) / extra * 1e6,
               "per_stream_ms": lo / p["cpu_streams"] * 1000,
               "cpu_s": {str(k): v for k, v in cpu.items()}}
        self.log(f"  {name}: {out['per_chunk_us']:.1f} us/chunk marginal, "
                 f"{out['per_stream_ms']:.2f} ms per {p['cpu_lo']}-chunk stream")
        self.results[name] = out
        return out

    def run(self) -> dict[str, Any]:
        p = self.p
        self.log("starting the fake provider and measuring `sidecar serve` start-up ...")
        self.start_fake()
        starts = []
        for _ in range(p["starts"]):
            proc, _url, took = self.start_sidecar()
            starts.append(took)
            stop(proc)
        self.results["startup_s"] = {"median": statistics.median(starts), "all": starts}
        self.sidecar, self.sidecar_url, _ = self.start_sidecar(self.profile)
        time.sleep(0.3)
        self.results["rss_idle_mb"] = rss_mb(self.sidecar.pid)
        self.loader = Loader()
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
        self.log("sidecar CPU per streamed chunk (chunks 1 ms apart, 8 streams in flight) ...")
        self.cpu_per_chunk("cpu_tr", "tr")
        self.cpu_per_chunk("cpu_pt", "pt")
        self.log("128 streams at once, 50 chunks 5 ms apart ...")
        self.fake_shape(50, 5.0)
        self.interleaved("s128_pt", "pt", True, 128, p["n128"], p["rounds128"])
        self.interleaved("s128_tr", "tr", True, 128, p["n128"], p["rounds128"])
        time.sleep(0.5)
        self.results["rss_end_mb"] = rss_mb(self.sidecar.pid)
        return self.results

    def sanity(self) -> None:
        """One request per path through the sidecar, so a broken setup fails loudly instead of benchmarking 4xx."""
        for kind in ("pt", "tr"):
            for stream in (False, True):
                res = self.job("sidecar", kind, stream, 1, 1, 0)
                if res["errors"] or not res["bytes"]:
                    raise RuntimeError(f"sanity check failed ({kind}, stream={stream}): {res['first_errors']}")


# --- the table -----------------------------------------------------------------------------------

def table(r: dict[str, Any]) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    def added(name: str, key: str) -> float:
        return r[name]["sidecar"][key] - r[name]["direct"][key]

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    rows = []
    a = added("pt_1", "p50")
    rows.append(("added median latency, non-streamed pass-through, 1 in flight",
                 f"+{a:.2f} ms ({r['pt_1']['direct']['p50']:.2f} → {r['pt_1']['sidecar']['p50']:.2f})",
                 "≤ 0.5 ms", verdict(a <= 0.5)))
    a = added("tr_1", "p50")
    rows.append(("added median latency, non-streamed translated (OpenAI client → Anthropic), 1 in flight",
                 f"+{a:.2f} ms ({r['tr_1']['direct']['p50']:.2f} → {r['tr_1']['sidecar']['p50']:.2f})",
                 "≤ 1.0 ms", verdict(a <= 1.0)))
    a = added("pt_16", "p99")
    rows.append(("added p99 latency, 16 in flight, pass-through",
                 f"+{a:.2f} ms ({r['pt_16']['direct']['p99']:.2f} → {r['pt_16']['sidecar']['p99']:.2f})",
                 "≤ 4 ms", verdict(a <= 4)))
    d, s = r["pt_32"]["direct"]["rps"], r["pt_32"]["sidecar"]["rps"]
    rows.append(("throughput, non-streamed pass-through, 32 in flight",
                 f"{s:.0f} req/s (direct {d:.0f})", "≥ 2,500 req/s (25× LiteLLM)", verdict(s >= 2500)))
    a = added("tr_ttft", "ttft_p50")
    rows.append(("added time to first byte, streamed translated, 1 in flight (median)",
                 f"+{a:.2f} ms ({r['tr_ttft']['direct']['ttft_p50']:.2f} → {r['tr_ttft']['sidecar']['ttft_p50']:.2f})",
                 "≤ 1 ms", verdict(a <= 1)))
    c = r["cpu_tr"]["per_chunk_us"]
    rows.append(("proxy CPU per streamed chunk, translated",
                 f"{c:.0f} µs (pass-through {r['cpu_pt']['per_chunk_us']:.0f} µs)", "≤ 20 µs", verdict(c <= 20)))
    for name, label in (("s128_pt", "pass-through"), ("s128_tr", "translated")):
        ratio = r[name]["sidecar"]["p99"] / r[name]["direct"]["p99"]
        rows.append((f"128 streams at once (50 chunks, 5 ms apart), {label}: p99 total vs direct",
                     f"{ratio:.2f}× ({r[name]['direct']['p99']:.0f} → {r[name]['sidecar']['p99']:.0f} ms)",
                     "≤ 1.3×", verdict(ratio <= 1.3)))
    idle = r["rss_idle_mb"]
    peak = max(r["s128_pt"]["sidecar"]["peak_rss_mb"], r["s128_tr"]["sidecar"]["peak_rss_mb"])
    rows.append(("resident memory, idle (just started) / 128 concurrent streams",
                 f"{idle:.0f} MB / {peak:.0f} MB", "≤ 60 MB / ≤ 120 MB", verdict(idle <= 60 and peak <= 120)))
    rows.append(("resident memory after a 10-minute soak", "not measured", "flat", "—"))
    st = r["startup_s"]["median"]
    rows.append(("`sidecar serve` start → health answering (median)", f"{st:.2f} s", "≤ 0.8 s", verdict(st <= 0.8)))

    notes = [
        f"sidecar CPU per non-streamed request: pass-through {r['pt_32']['sidecar']['sidecar_cpu_per_req_ms']:.2f} ms "
        f"(@32), translated {r['tr_1']['sidecar']['sidecar_cpu_per_req_ms']:.2f} ms (@1); "
        f"per 10-chunk stream (translated) {r['cpu_tr']['per_stream_ms']:.2f} ms",
        f"resident memory after the non-streamed load: {r['rss_after_load_mb']:.0f} MB; at the end: {r['rss_end_mb']:.0f} MB",
        f"throughput per round (req/s) direct {r['pt_32']['direct']['rps_rounds']}, "
        f"sidecar {r['pt_32']['sidecar']['rps_rounds']}",
        "LiteLLM comparison: skipped (not implemented in this script); the issue's LiteLLM column is quoted, not measured.",
    ]
    errs = sum(v[s]["errors"] for v in r.values() if isinstance(v, dict) and "direct" in v for s in ("direct", "sidecar"))
    if errs:
        notes.append(f"!! {errs} failed requests in the run (see the log above)")
    return rows, notes


def render(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| figure | measured | target | |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a reduced run (< 1 minute)")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--profile", type=Path, metavar="OUT.prof",
                    help="run the benchmarked sidecar under cProfile, stats written here (figures are then inflated)")
    args = ap.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("bench/run.py reads /proc for CPU and memory: Linux only", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    bench = Bench(args.quick, log, args.profile)
    try:
        results = bench.run()
    finally:
        bench.close()
    rows, notes = table(results)
    cpu = platform.processor() or platform.machine()
    header = (f"llm-sidecar overhead, {dt.date.today().isoformat()}, {os.cpu_count()} cores ({cpu}), "
              f"Python {platform.python_version()}, {'quick' if args.quick else 'full'} run "
              f"in {time.monotonic() - t0:.0f} s")
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
