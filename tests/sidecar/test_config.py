"""Configuration: zero-config presets, the TOML overlay, clear ConfigErrors, and the platform dirs.

No keyring is touched here. The autouse fixture in conftest.py points XDG_CONFIG_HOME / XDG_DATA_HOME at
a temp dir for every test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.config import (DEFAULT_HOST, DEFAULT_PORT, Config, ConfigError, Price, Timeouts, config_from_dict,
                            data_dir, default_config_path, load_config)

ROOT = Path(__file__).resolve().parents[2]
PRESET_IDS = ("openai", "anthropic", "gemini", "groq", "mistral", "deepseek", "openrouter", "together", "xai",
              "ollama")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sidecar", *args], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=30, env={**os.environ, **(env or {})})


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text), explicit=True)


# --- zero config -----------------------------------------------------------------------------

def test_zero_config_has_every_preset():
    for config in (Config(), load_config(), config_from_dict({})):
        for pid in PRESET_IDS:
            assert pid in config.providers, pid
            assert config.providers[pid].id == pid
        assert config.providers["ollama"].needs_key is False
        for pid in PRESET_IDS[:-1]:
            assert config.providers[pid].needs_key is True, pid
        assert config.models == {} and config.prices == {} and config.warnings == ()
        assert (config.host, config.port) == (DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", 8787)


def test_zero_config_adapters_and_base_urls():
    providers = Config().providers
    assert providers["openai"].adapter == "openai" and providers["openai"].base_url.endswith("/v1")
    assert providers["anthropic"].adapter == "anthropic"
    assert providers["gemini"].adapter == "gemini"
    for pid in ("groq", "mistral", "deepseek", "openrouter", "together", "xai", "ollama"):
        assert providers[pid].adapter == "openai", pid
        assert providers[pid].base_url.startswith("https://") or pid == "ollama"
    assert providers["ollama"].base_url.startswith("http://127.0.0.1:")


def test_missing_default_file_is_zero_config():
    assert not default_config_path().exists()
    config = load_config()
    assert config.source is None
    assert set(PRESET_IDS) <= set(config.providers)


# --- the file overlay ------------------------------------------------------------------------

FULL = """
[server]
host = "127.0.0.1"
port = 9123

[providers.openai]
base_url = "http://127.0.0.1:9001/v1/"

[providers.anthropic]
base_url = "http://127.0.0.1:9002"
headers = { "anthropic-beta" = "tools-2024" }

[providers.local]
adapter = "openai"
base_url = "http://127.0.0.1:11434/v1"
key = false
responses_api = false
stream_usage = false
models = ["loc-"]

[providers.claudeish]
adapter = "anthropic"
base_url = "https://claude.example.test"

[models.smart]
targets = ["openai/gpt-4.1", "groq/llama-3.3-70b-versatile", "local/qwen"]

[models.spread]
targets = ["openai/gpt-4o", "anthropic/claude-haiku-4-5"]
strategy = "weighted"
weights = [3, 1]

[timeouts]
connect = 2
first_byte = 60.5
idle = 30

[prices."openai/gpt-4o-mini"]
input = 0.15
output = 0.60
cache_read = 0.075

[prices."local/qwen"]
input = 0
output = 0

[store]
bodies = false
body_cap_kb = 16
"""


def test_load_full_file(tmp_path):
    path = write(tmp_path, FULL)
    config = load_config(path, explicit=True)
    assert config.source == path
    assert (config.host, config.port) == ("127.0.0.1", 9123)
    # preset overrides keep everything else from the preset
    openai = config.providers["openai"]
    assert openai.base_url == "http://127.0.0.1:9001/v1"  # trailing slash dropped
    assert openai.adapter == "openai" and openai.needs_key and openai.responses_api
    assert openai.model_prefixes == Config().providers["openai"].model_prefixes
    anthropic = config.providers["anthropic"]
    assert anthropic.base_url == "http://127.0.0.1:9002"
    assert anthropic.extra_headers == {"anthropic-beta": "tools-2024"}
    # untouched presets are still there, unchanged
    assert config.providers["gemini"] == Config().providers["gemini"]
    assert set(PRESET_IDS) <= set(config.providers)
    # new providers
    local = config.providers["local"]
    assert (local.id, local.adapter, local.base_url) == ("local", "openai", "http://127.0.0.1:11434/v1")
    assert local.needs_key is False and local.responses_api is False and local.stream_usage is False
    assert local.model_prefixes == ("loc-",)
    claudeish = config.providers["claudeish"]
    assert (claudeish.adapter, claudeish.base_url, claudeish.needs_key) == ("anthropic", "https://claude.example.test", True)
    # aliases
    smart = config.models["smart"]
    assert smart.targets == ("openai/gpt-4.1", "groq/llama-3.3-70b-versatile", "local/qwen")
    assert smart.strategy == "order" and smart.weights == ()
    spread = config.models["spread"]
    assert spread.strategy == "weighted" and spread.weights == (3.0, 1.0)
    # timeouts, prices, store
    assert config.timeouts == Timeouts(connect=2.0, first_byte=60.5, idle=30.0)
    assert config.prices["openai/gpt-4o-mini"] == Price(input=0.15, output=0.60, cache_read=0.075, cache_write=None)
    assert config.prices["local/qwen"] == Price(0.0, 0.0)
    assert config.store_bodies is False and config.body_cap_bytes == 16 * 1024
    assert config.warnings == ()


def test_partial_timeouts_keep_defaults(tmp_path):
    config = load_text(tmp_path, "[timeouts]\nidle = 5\n")
    assert config.timeouts == Timeouts(connect=Timeouts().connect, first_byte=Timeouts().first_byte, idle=5.0)


def test_preset_can_be_switched_to_no_key(tmp_path):
    config = load_text(tmp_path, '[providers.together]\nkey = false\n')
    assert config.providers["together"].needs_key is False
    assert config.providers["together"].base_url == Config().providers["together"].base_url


def test_store_data_dir_override(tmp_path):
    config = load_text(tmp_path, f'[store]\ndata_dir = "{tmp_path / "elsewhere"}"\n')
    assert config.data_dir == tmp_path / "elsewhere"
    assert config.db_path == tmp_path / "elsewhere" / "requests.db"


def test_limits_store_backlog_and_tui_keymap(tmp_path):
    config = load_text(tmp_path, "[limits]\nmax_body_mb = 0.5\nmax_header_bytes = 16384\nmax_headers = 64\n"
                                 "max_messages = 200\nmax_parts = 900\n[store]\nbacklog = 7\n"
                                 '[tui.keymap]\n"app.spend" = "S"\ntraffic.follow = " F "\n')
    assert config.limits.max_body_bytes == 512 * 1024 and config.limits.max_header_bytes == 16384
    assert (config.limits.max_headers, config.limits.max_messages, config.limits.max_parts) == (64, 200, 900)
    assert config.store_backlog == 7
    assert config.tui_keymap == {"app.spend": "S", "traffic.follow": "F"}  # unquoted dotted ids are flattened


def test_limits_defaults_without_the_sections():
    config = config_from_dict({"limits": {"max_messages": 50}})
    assert config.limits.max_messages == 50 and config.limits.max_parts == 100_000
    assert config.limits.max_body_bytes == 64 * 1024 * 1024 and config.limits.max_header_bytes == 65536
    assert Config().tui_keymap == {} and Config().store_backlog == 50_000


def test_budgets_section_is_parsed_and_enforced(tmp_path):
    """[budgets] used to be a "read but not enforced" warning; it is now parsed (see test_budgets.py)."""
    config = load_text(tmp_path, "[budgets]\ndaily_usd = 5\n[budgets.providers.openai]\nmonthly_usd = 2\n"
                                 "[budgets.clients.agent]\ndaily_usd = 1.5\n")
    assert config.warnings == ()
    assert config.budgets.mode == "block" and config.budgets.total.daily_usd == 5.0
    assert config.budgets.providers["openai"].monthly_usd == 2.0
    assert config.budgets.clients["agent"].daily_usd == 1.5 and config.budgets.any
    assert load_text(tmp_path, "[server]\nport = 1\n").warnings == ()


# --- errors: one ConfigError naming the key ---------------------------------------------------

@pytest.mark.parametrize("text, needles", [
    ("[server\nport = 1\n", ["not valid TOML"]),
    ("port = = 3\n", ["not valid TOML"]),
    ("[servers]\nport = 1\n", ["unknown config section", "servers"]),
    ("[providers.openai]\nadapter = \"cohere\"\n", ["providers.openai", "adapter", "cohere", "openai, anthropic, gemini"]),
    ("[providers.newco]\nadapter = \"grpc\"\nbase_url = \"http://127.0.0.1:1\"\n", ["providers.newco", "adapter", "grpc"]),
    ("[providers.newco]\nbase_url = \"http://127.0.0.1:1\"\n", ["providers.newco", "adapter"]),
    ("[providers.newco]\nadapter = \"openai\"\n", ["providers.newco", "base_url"]),
    ("[providers.openai]\nbase_url = \"127.0.0.1:9001/v1\"\n", ["providers.openai", "base_url", "http://"]),
    ("[providers.openai]\nbase_url = 9001\n", ["providers.openai", "base_url"]),
    ("[providers.openai]\nkey = \"yes\"\n", ["providers.openai", "key"]),
    ("[providers]\nopenai = \"http://127.0.0.1:1\"\n", ["providers.openai", "table"]),
    ("[models.smart]\ntargets = [\"nosuch/gpt-4o\"]\n", ["models.smart", "nosuch/gpt-4o", "openai"]),
    ("[models.smart]\ntargets = [\"gpt-4o\"]\n", ["models.smart", "gpt-4o", "provider/model"]),
    ("[models.smart]\ntargets = []\n", ["models.smart", "targets"]),
    ("[models.smart]\nstrategy = \"order\"\n", ["models.smart", "targets"]),
    ("[models.smart]\ntargets = [\"openai/gpt-4o\"]\nstrategy = \"fastest\"\n", ["models.smart", "strategy", "fastest", "order"]),
    ("[models.smart]\ntargets = [\"openai/gpt-4o\", \"groq/x\"]\nstrategy = \"weighted\"\n", ["models.smart", "weighted", "weight"]),
    ("[models.smart]\ntargets = [\"openai/gpt-4o\", \"groq/x\"]\nstrategy = \"weighted\"\nweights = [1]\n", ["models.smart", "weight"]),
    ("[timeouts]\nconnect = 0\n", ["timeouts", "connect", "positive"]),
    ("[timeouts]\nidle = -1\n", ["timeouts", "idle", "positive"]),
    ("[timeouts]\nfirst_byte = \"300\"\n", ["timeouts", "first_byte"]),
    ("[timeouts]\nfirst_byte = true\n", ["timeouts", "first_byte"]),
    ("[timeouts]\ntotal = 600\n", ["timeouts", "total"]),
    ("[providers.openai]\nheaders = { Authorization = \"Bearer sk-x\" }\n", ["providers.openai", "headers", "sidecar keys set openai"]),
    ("[providers.anthropic]\nheaders = { \"X-Api-Key\" = \"sk-ant-x\" }\n", ["providers.anthropic", "headers"]),
    ("[providers.gemini]\nheaders = { \"x-goog-api-key\" = \"AIza\" }\n", ["providers.gemini", "headers"]),
    ("[providers.newco]\nadapter = \"openai\"\nbase_url = \"http://127.0.0.1:1\"\nheaders = { \"api-key\" = \"k\" }\n", ["providers.newco", "headers"]),
    ("[server]\nport = 70000\n", ["server", "port"]),
    ("[server]\nport = \"8787\"\n", ["server", "port"]),
    ("[server]\nhost = 127\n", ["server", "host"]),
    ("[prices.\"gpt-4o\"]\ninput = 1\noutput = 2\n", ["prices", "gpt-4o", "provider/model"]),
    ("[prices.\"openai/gpt-4o\"]\ninput = 1\n", ["prices", "openai/gpt-4o", "output"]),
    ("[prices.\"openai/gpt-4o\"]\ninput = \"cheap\"\noutput = 2\n", ["prices", "openai/gpt-4o", "number"]),
    ("[store]\nbodies = \"yes\"\n", ["store", "bodies"]),
    ("server = 5\n", ["server", "table"]),
    ("[store]\nbacklog = 0\n", ["store", "backlog", "at least 1"]),
    ("[store]\nbacklog = \"lots\"\n", ["store", "backlog"]),
    ("[limits]\nmax_body_mb = 0\n", ["limits", "max_body_mb", "positive"]),
    ("[limits]\nmax_body_mb = \"64\"\n", ["limits", "max_body_mb"]),
    ("[limits]\nmax_header_bytes = 100\n", ["limits", "max_header_bytes", "1024"]),
    ("[limits]\nmax_headers = true\n", ["limits", "max_headers"]),
    ("[limits]\nmax_messages = -5\n", ["limits", "max_messages"]),
    ("[limits]\nmax_parts = 1.5\n", ["limits", "max_parts"]),
    ("[limits]\nmax_body = 64\n", ["limits", "max_body", "known: max_body_mb"]),
    ("limits = 5\n", ["limits", "table"]),
    ("[tui]\nkeys = {}\n", ["tui", "keys", "known: keymap"]),
    ("[tui]\nkeymap = \"S\"\n", ["tui", "keymap", "dict"]),
    ("[tui.keymap]\n\"app.spend\" = 5\n", ["tui", "app.spend", "key string"]),
    ("[tui.keymap]\n\"app.spend\" = \" \"\n", ["tui", "app.spend"]),
])
def test_config_errors_name_the_key(tmp_path, text, needles):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, explicit=True)
    message = str(info.value)
    for needle in needles:
        assert needle in message, (needle, message)


def test_headers_without_keys_are_fine(tmp_path):
    config = load_text(tmp_path, '[providers.openai]\nheaders = { "OpenAI-Organization" = "org-1" }\n')
    assert config.providers["openai"].extra_headers == {"OpenAI-Organization": "org-1"}


def test_bad_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[server\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path, explicit=True)
    assert str(path) in str(info.value)


def test_unreadable_config_is_a_config_error(tmp_path):
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "dir.toml", explicit=True)
    write(tmp_path, "", "latin.toml").write_bytes(b'[server]\nhost = "\xff"\n')
    with pytest.raises(ConfigError):
        load_config(tmp_path / "latin.toml", explicit=True)


def test_explicit_missing_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(missing, explicit=True)
    assert str(missing) in str(info.value)
    # a missing default (not explicitly named) file is simply zero config
    assert load_config(missing).source is None


def test_non_numeric_weight_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="weight"):
        load_text(tmp_path, '[models.spread]\ntargets = ["openai/a", "groq/b"]\nstrategy = "weighted"\n'
                            'weights = [1, "heavy"]\n')


def test_scalar_weights_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="weight"):
        load_text(tmp_path, '[models.spread]\ntargets = ["openai/a"]\nstrategy = "weighted"\nweights = 5\n')


def test_unknown_provider_key_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="base_ur"):
        load_text(tmp_path, '[providers.openai]\nbase_ur = "http://127.0.0.1:9001/v1"\n')


def test_non_string_model_prefix_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="models"):
        load_text(tmp_path, '[providers.newco]\nadapter = "openai"\nbase_url = "http://127.0.0.1:1/v1"\nmodels = [5]\n')


# --- platform dirs ---------------------------------------------------------------------------

def test_xdg_dirs_move_config_and_data(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "dat"))
    assert default_config_path() == tmp_path / "cfg" / "llm-sidecar" / "config.toml"
    assert data_dir() == tmp_path / "dat" / "llm-sidecar"
    config = Config()
    assert config.data_dir == tmp_path / "dat" / "llm-sidecar"
    assert config.db_path == tmp_path / "dat" / "llm-sidecar" / "requests.db"


def test_default_config_file_is_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    path = write(tmp_path, '[providers.openai]\nbase_url = "http://127.0.0.1:9001/v1"\n',
                 "cfg/llm-sidecar/config.toml")
    config = load_config()
    assert config.source == path
    assert config.providers["openai"].base_url == "http://127.0.0.1:9001/v1"


# --- through the CLI -------------------------------------------------------------------------

def test_cli_reads_the_default_config_file(tmp_path):
    write(tmp_path, "[server]\nport = 9123\n", "cfg/llm-sidecar/config.toml")
    proc = cli("env", "--shell", "bash", env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert proc.returncode == 0, proc.stderr
    assert "export OPENAI_BASE_URL='http://127.0.0.1:9123/v1'" in proc.stdout
    # --port beats the file
    proc = cli("env", "--shell", "bash", "--port", "9124", env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert "http://127.0.0.1:9124/v1" in proc.stdout


@pytest.mark.parametrize("command", [["serve"], ["env"], ["doctor"], ["keys", "list"]])
def test_cli_missing_config_file_exits_2(tmp_path, command):
    missing = tmp_path / "missing.toml"
    proc = cli(*command, "--config", str(missing))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "config error" in proc.stderr and str(missing) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_bad_config_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, "[models.smart]\ntargets = [\"nosuch/x\"]\n")
    proc = cli("serve", "--config", str(path), "--port", "0")
    assert proc.returncode == 2
    assert "config error" in proc.stderr and "models.smart" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_bad_port_is_a_config_error():
    proc = cli("env", "--port", "70000")
    assert proc.returncode == 2 and "config error" in proc.stderr and "--port" in proc.stderr


def test_cli_global_config_before_the_command(tmp_path):
    missing = tmp_path / "missing.toml"
    proc = cli("--config", str(missing), "env")
    assert proc.returncode == 2 and "config error" in proc.stderr


def test_cli_bad_weight_is_reported_cleanly(tmp_path):
    path = write(tmp_path, '[models.s]\ntargets = ["openai/a"]\nstrategy = "weighted"\nweights = ["x"]\n')
    proc = cli("env", "--config", str(path))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2 and "config error" in proc.stderr
