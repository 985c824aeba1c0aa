"""LiteLLM's proxy as a third side of the benchmark (``bench/run.py --litellm``), against the same fake provider.

Issue 8 quotes LiteLLM's figures; this measures them on the same machine, in the same interleaved rounds. LiteLLM
is installed into its own virtualenv (a throwaway one in the bench's temp dir, or ``--litellm-venv DIR`` to keep
it between runs: the install is ~1 GB of packages), never into the sidecar's. It is started the way its docs say
to run the proxy (``litellm --config``, one uvicorn worker), with what it needs to start offline and lean:

- a master key (the proxy refuses to start without one) — the load generator sends it;
- ``LITELLM_LOCAL_MODEL_COST_MAP=True``: use the price map shipped in the package instead of fetching it;
- no database (``DATABASE_URL`` unset, spend logs off) and no callbacks or telemetry.

Both bench models are routed to the fake: ``gpt-4o-mini`` as ``openai/…`` (LiteLLM's closest thing to a
pass-through) and ``claude-sonnet-4-5`` as ``anthropic/…`` (translated from the OpenAI client's format). Between
its own rounds the process is stopped (SIGSTOP), so its background work does not land on the other sides' figures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from procs import free_port, stop, wait_healthy

LITELLM_VERSION = "1.108.7"
"""Pinned, so two runs compare like with like (the newest at the time of writing; ``--litellm-version`` overrides)."""

MASTER_KEY = "sk-bench-master"


def config_yaml(fake_url: str) -> str:
    """LiteLLM's proxy config: both bench models on the fake provider; callbacks, spend logs and telemetry off."""
    return f"""model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {fake_url}/v1
      api_key: bench
  - model_name: claude-sonnet-4-5
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {fake_url}
      api_key: bench
litellm_settings:
  callbacks: []
  success_callback: []
  failure_callback: []
  telemetry: false
general_settings:
  master_key: {MASTER_KEY}
  disable_spend_logs: true
  disable_error_logs: true
"""


class LiteLLM:
    """One LiteLLM proxy process: install (once), start, stop."""

    def __init__(self, workdir: Path, fake_url: str, log, *, version: str = LITELLM_VERSION,  # noqa: ANN001
                 venv: Path | None = None) -> None:
        self.workdir = workdir
        self.fake_url = fake_url
        self.log = log
        self.version = version
        self.venv = venv or workdir / "litellm-venv"
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.installed = ""
        self._paused = False

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _python(self) -> Path:
        return self.venv / "bin" / "python"

    def _installed_version(self) -> str:
        if not self._python().exists():
            return ""
        probe = subprocess.run([str(self._python()), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                               capture_output=True, text=True)
        return probe.stdout.strip() if probe.returncode == 0 else ""

    def install(self) -> str:
        """Create the virtualenv and ``pip install 'litellm[proxy]==VERSION'`` unless that version is already there."""
        have = self._installed_version()
        if have != self.version:
            if not self._python().exists():
                self.log(f"creating a virtualenv for LiteLLM in {self.venv} ...")
                subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
            self.log(f"installing litellm[proxy]=={self.version} into it (a few minutes the first time) ...")
            subprocess.run([str(self._python()), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            f"litellm[proxy]=={self.version}"], check=True)
            have = self._installed_version()
        self.installed = have
        return have

    def start(self) -> float:
        """Start the proxy; returns the seconds from launch to its liveness endpoint answering."""
        config = self.workdir / "litellm-config.yaml"
        config.write_text(config_yaml(self.fake_url))
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL", "PYTHON_KEYRING_BACKEND")}
        env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False", DISABLE_SCHEMA_UPDATE="True")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        out = open(self.workdir / "litellm.log", "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([str(self.venv / "bin" / "litellm"), "--config", str(config), "--host",
                                      "127.0.0.1", "--port", str(port), "--num_workers", "1"],
                                     cwd=self.workdir, env=env, stdout=out, stderr=out)
        try:
            wait_healthy(self.url + "/health/liveliness", self.proc, timeout=180)
        except RuntimeError:
            stop(self.proc)
            out.close()
            sys.stderr.write((self.workdir / "litellm.log").read_text(errors="replace")[-3000:])
            raise
        return time.perf_counter() - t0

    def pause(self, paused: bool) -> None:
        """SIGSTOP while the other sides are measured, SIGCONT for its own rounds: LiteLLM keeps working in the
        background after a burst (logging, its schedulers), and on two cores that work would be charged to the
        sidecar's figures."""
        if self.proc is not None and self.proc.poll() is None and paused != self._paused:
            os.kill(self.proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)
            self._paused = paused

    def close(self) -> None:
        self.pause(False)
        stop(self.proc)
        self.proc = None
