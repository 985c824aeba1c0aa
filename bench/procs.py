"""Process plumbing shared by the benchmark scripts: ports, health waits, CPU and memory of a child, the load worker.

CPU comes from ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds on CPU, per thread) rather than the 10 ms clock
ticks of ``/proc/<pid>/stat``: the per-chunk figure is a difference of two CPU totals, and tick granularity alone
was several microseconds per chunk in a quick run. Linux only, like the rest of the benchmark.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, timeout: float = 2.0,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
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


def _thread_cpu_ns(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                out[tid] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended between listdir and open
    return out


def _stat_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15 of stat)


class CpuMeter:
    """CPU seconds a process (all its threads) spends between `__init__` and `elapsed`. A thread that ends in
    between takes its time with it (the sidecar's threads live as long as it does)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start = _thread_cpu_ns(pid)
        self._start_ticks = _stat_cpu_s(pid) if not self._start else 0.0

    def elapsed(self) -> float:
        if not self._start:  # no schedstat on this kernel: clock ticks
            return _stat_cpu_s(self.pid) - self._start_ticks
        now = _thread_cpu_ns(self.pid)
        return sum(ns - self._start.get(tid, 0) for tid, ns in now.items()) / 1e9


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

    def __init__(self, cwd: Path = HERE.parent) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "load.py"), "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, cwd=cwd)

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
