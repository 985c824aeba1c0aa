"""Configuration: built-in presets, overlaid by an optional TOML file, resolved into frozen dataclasses.

Zero config must work: with no file, every preset in `adapters.presets` is a provider. The file lives
in the platform's user config dir (platformdirs, app ``llm-sidecar``), so ``XDG_CONFIG_HOME`` moves it
on Linux; ``--config`` points elsewhere. Mistakes in the file are reported as one clear `ConfigError`
naming the key, never as a traceback from deep inside the proxy.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from adapters.presets import ADAPTERS, PRESETS, ProviderPreset
from sidecar.config_checks import ConfigError, positive_int
from sidecar.config_checks import no_unknown as _no_unknown
from sidecar.config_checks import port as _port
from sidecar.config_checks import table as _table
from sidecar.config_checks import typed as _typed
from sidecar.limits import MIB, RequestLimits
from sidecar.store_backlog import DEFAULT_LIMIT as DEFAULT_BACKLOG

APP_NAME = "llm-sidecar"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
STRATEGIES = ("order", "lowest_latency", "lowest_cost", "weighted")


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_config_path() -> Path:
    return config_dir() / "config.toml"


@dataclass(frozen=True, slots=True)
class ModelAlias:
    """A name clients can ask for that stands for an ordered list of ``provider/model`` targets."""

    name: str
    targets: tuple[str, ...]
    strategy: str = "order"
    weights: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. There is deliberately no total timeout: it would cut off long healthy streams.

    ``first_byte`` covers a whole non-streamed answer, which reasoning models can take minutes to
    produce, hence the generous default.
    """

    connect: float = 10.0
    first_byte: float = 300.0
    idle: float = 120.0


@dataclass(frozen=True, slots=True)
class Price:
    """A price override in USD per million tokens."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """USD caps for one scope (everything, one provider, or one client); None = no cap for that period."""

    daily_usd: float | None = None
    monthly_usd: float | None = None


BUDGET_MODES = ("block", "warn")


@dataclass(frozen=True, slots=True)
class Budgets:
    """``[budgets]``: what happens when spend (UTC day / calendar month) reaches a cap.

    ``block`` answers 429 until the period resets; ``warn`` lets the request through with an
    ``x-sidecar-warning`` header and a log line.
    """

    mode: str = "block"
    total: Limits = field(default_factory=Limits)
    providers: dict[str, Limits] = field(default_factory=dict)
    clients: dict[str, Limits] = field(default_factory=dict)
    any: bool = field(init=False, repr=False, compare=False)
    """Whether any cap is set at all. Computed once: the proxy asks on every request."""

    def __post_init__(self) -> None:
        scopes = [self.total, *self.providers.values(), *self.clients.values()]
        object.__setattr__(self, "any", any(s.daily_usd is not None or s.monthly_usd is not None for s in scopes))


@dataclass(frozen=True, slots=True)
class Otel:
    """``[otel]``: optional OpenTelemetry export (OTLP over HTTP/protobuf or gRPC) of one span and a few metrics
    per request.

    ``endpoint`` is the collector's base URL (over HTTP ``/v1/traces`` and ``/v1/metrics`` are appended; over gRPC
    it is ``scheme://host:port``, https meaning TLS). ``headers`` go to the collector only (e.g. its own auth);
    provider keys and request content are never exported.
    """

    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    service_name: str = "llm-sidecar"
    traces: bool = True
    metrics: bool = True
    export_interval_s: float = 60.0
    """How often metrics are pushed; spans go in batches as they come. Both are flushed at shutdown."""
    protocol: str = "http/protobuf"
    """``http/protobuf`` (collectors listen on 4318) or ``grpc`` (on 4317): ``OTEL_EXPORTER_OTLP_PROTOCOL``'s names."""


@dataclass(frozen=True, slots=True)
class Config:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    allowed_hosts: tuple[str, ...] = ()
    """Host header values accepted besides loopback names (DNS-rebinding defence); ``name`` or ``name:port``."""
    allowed_origins: tuple[str, ...] = ()
    """Browser origins (``scheme://host[:port]``) allowed to call the sidecar cross-origin."""
    require_token: bool = False
    """Require a client token even when no persistent token exists yet."""
    providers: dict[str, ProviderPreset] = field(default_factory=lambda: dict(PRESETS))
    models: dict[str, ModelAlias] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    prices: dict[str, Price] = field(default_factory=dict)
    """Keyed by ``provider/model``."""
    budgets: Budgets = field(default_factory=Budgets)
    otel: Otel | None = None
    """None (the default): no OpenTelemetry export at all."""
    store_bodies: bool = True
    body_cap_bytes: int = 256 * 1024
    store_backlog: int = DEFAULT_BACKLOG
    """Records held in memory while the request log cannot be written (disk full, ...); oldest dropped beyond."""
    data_dir: Path = field(default_factory=data_dir)
    limits: RequestLimits = field(default_factory=RequestLimits)
    """``[limits]``: body and header sizes, header count, messages and parts per request."""
    tui_keymap: dict[str, str] = field(default_factory=dict)
    """``[tui] keymap``: binding id → key (``"app.spend" = "S"``), applied with Textual's ``set_keymap``."""
    source: Path | None = None
    """The file this was loaded from, if any."""
    warnings: tuple[str, ...] = ()
    """Things the file asks for that this version does not do yet; printed at start, never silent."""

    @property
    def db_path(self) -> Path:
        return self.data_dir / "requests.db"


def load_config(path: Path | None = None, *, explicit: bool = False) -> Config:
    """Load the TOML at ``path`` (default: the platform config file) over the presets.

    A missing default file is fine (zero config); a missing file the user named is an error.
    """
    path = path or default_config_path()
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file not found: {path}")
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return config_from_dict(raw, source=path)


def config_from_dict(raw: dict[str, Any], *, source: Path | None = None) -> Config:
    """Resolve a parsed TOML document into a `Config`; public so tests and the demo build configs in code."""
    known = {"server", "providers", "models", "timeouts", "prices", "store", "budgets", "otel", "limits", "tui"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
    server = _table(raw, "server")
    store = _table(raw, "store")
    _no_unknown(server, "server", {"host", "port", "allowed_hosts", "allowed_origins", "require_token"})
    _no_unknown(store, "store", {"bodies", "body_cap_kb", "data_dir", "backlog"})
    kwargs: dict[str, Any] = {"source": source}
    if "host" in server:
        kwargs["host"] = _typed(server, "host", str, "server")
    if "port" in server:
        kwargs["port"] = _port(server["port"])
    for key in ("allowed_hosts", "allowed_origins"):
        if key in server:
            values = _typed(server, key, list, "server")
            if not all(isinstance(v, str) and v.strip() and v.strip() != "*" for v in values):
                raise ConfigError(f"[server] {key} must be a list of non-empty strings (no wildcard '*')")
            kwargs[key] = tuple(v.strip().lower().rstrip("/") for v in values)
    if "require_token" in server:
        kwargs["require_token"] = _typed(server, "require_token", bool, "server")
    if "bodies" in store:
        kwargs["store_bodies"] = _typed(store, "bodies", bool, "store")
    if "body_cap_kb" in store:
        cap_kb = _typed(store, "body_cap_kb", int, "store")
        if cap_kb < 0:
            raise ConfigError("[store] body_cap_kb must be 0 or more")
        kwargs["body_cap_bytes"] = cap_kb * 1024
    if "data_dir" in store:
        kwargs["data_dir"] = Path(_typed(store, "data_dir", str, "store")).expanduser()
    if "backlog" in store:
        kwargs["store_backlog"] = positive_int(store, "backlog", "store")
    providers = _providers(_table(raw, "providers"))
    kwargs["providers"] = providers
    kwargs["models"] = _models(_table(raw, "models"), providers)
    kwargs["timeouts"] = _timeouts(_table(raw, "timeouts"))
    kwargs["prices"] = _prices(_table(raw, "prices"))
    kwargs["budgets"] = _budgets(_table(raw, "budgets"), providers)
    if "otel" in raw:
        kwargs["otel"] = _otel(_table(raw, "otel"))
    kwargs["limits"] = _request_limits(_table(raw, "limits"))
    kwargs["tui_keymap"] = _tui_keymap(_table(raw, "tui"))
    return Config(**kwargs)


def _providers(table: dict[str, Any]) -> dict[str, ProviderPreset]:
    providers = dict(PRESETS)
    for pid, spec in table.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"[providers.{pid}] must be a table")
        where = f"providers.{pid}"
        _no_unknown(spec, where, _PROVIDER_KEYS)
        base = providers.get(pid)
        adapter = spec.get("adapter", base.adapter if base else None)
        if adapter is None:
            raise ConfigError(
                f"[{where}] is not a built-in preset, so it needs adapter = one of {', '.join(ADAPTERS)}"
            )
        if adapter not in ADAPTERS:
            raise ConfigError(f"[{where}] adapter = {adapter!r}; expected one of {', '.join(ADAPTERS)}")
        if base is None:
            if "base_url" not in spec:
                raise ConfigError(f"[{where}] needs base_url")
            base = ProviderPreset(pid, adapter, "")
        changes: dict[str, Any] = {"adapter": adapter}
        if "base_url" in spec:
            url = _typed(spec, "base_url", str, where).rstrip("/")
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"[{where}] base_url must start with http:// or https://, got {url!r}")
            changes["base_url"] = url
        if "key" in spec:
            changes["needs_key"] = _typed(spec, "key", bool, where)
        if "responses_api" in spec:
            changes["responses_api"] = _typed(spec, "responses_api", bool, where)
        if "stream_usage" in spec:
            changes["stream_usage"] = _typed(spec, "stream_usage", bool, where)
        if "models" in spec:
            prefixes = _typed(spec, "models", list, where)
            if not all(isinstance(p, str) and p for p in prefixes):
                raise ConfigError(f"[{where}] models must be a list of model-name prefixes (strings)")
            changes["model_prefixes"] = tuple(p.lower() for p in prefixes)
        if "headers" in spec:
            headers = _typed(spec, "headers", dict, where)
            if any(k.lower() in {"authorization", "x-api-key", "x-goog-api-key", "api-key"} for k in headers):
                raise ConfigError(f"[{where}] headers must not carry keys; store them with `sidecar keys set {pid}`")
            changes["extra_headers"] = {str(k): str(v) for k, v in headers.items()}
        providers[pid] = replace(base, **changes)
    return providers


def _models(table: dict[str, Any], providers: dict[str, ProviderPreset]) -> dict[str, ModelAlias]:
    aliases = {}
    for name, spec in table.items():
        where = f"models.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"[{where}] must be a table")
        _no_unknown(spec, where, _ALIAS_KEYS)
        targets = _typed(spec, "targets", list, where) if "targets" in spec else None
        if not targets:
            raise ConfigError(f'[{where}] needs targets = ["provider/model", ...]')
        for t in targets:
            pid = str(t).split("/", 1)[0]
            if "/" not in str(t) or pid not in providers:
                raise ConfigError(
                    f"[{where}] target {t!r} must be provider/model with a configured provider "
                    f"({', '.join(sorted(providers))})"
                )
        strategy = spec.get("strategy", "order")
        if strategy not in STRATEGIES:
            raise ConfigError(f"[{where}] strategy = {strategy!r}; expected one of {', '.join(STRATEGIES)}")
        raw_weights = spec.get("weights", [])
        if not isinstance(raw_weights, list) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in raw_weights
        ):
            raise ConfigError(f"[{where}] weights must be a list of non-negative numbers, one per target")
        weights = tuple(float(w) for w in raw_weights)
        if strategy == "weighted" and len(weights) != len(targets):
            raise ConfigError(f"[{where}] strategy = weighted needs one weight per target")
        aliases[name] = ModelAlias(name, tuple(str(t) for t in targets), strategy, weights)
    return aliases


def _timeouts(table: dict[str, Any]) -> Timeouts:
    values = {}
    for key in ("connect", "first_byte", "idle"):
        if key in table:
            v = table[key]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"[timeouts] {key} must be a positive number of seconds")
            values[key] = float(v)
    unknown = set(table) - {"connect", "first_byte", "idle"}
    if unknown:
        raise ConfigError(f"[timeouts] unknown key(s): {', '.join(sorted(unknown))}")
    return Timeouts(**values)


def _prices(table: dict[str, Any]) -> dict[str, Price]:
    prices = {}
    for ref, spec in table.items():
        where = f'prices."{ref}"'
        if "/" not in ref or not isinstance(spec, dict):
            raise ConfigError(f'[{where}] must be a table keyed "provider/model"')
        values = [spec.get(k) for k in ("input", "output", "cache_read", "cache_write") if k in spec]
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in values):
            raise ConfigError(f"[{where}] prices must be non-negative numbers (USD per million tokens)")
        try:
            prices[ref] = Price(
                input=float(spec["input"]),
                output=float(spec["output"]),
                cache_read=float(spec["cache_read"]) if "cache_read" in spec else None,
                cache_write=float(spec["cache_write"]) if "cache_write" in spec else None,
            )
        except KeyError as exc:
            raise ConfigError(f"[{where}] needs {exc.args[0]} (USD per million tokens)") from None
        except (TypeError, ValueError):
            raise ConfigError(f"[{where}] prices must be numbers (USD per million tokens)") from None
    return prices


def _limits(table: dict[str, Any], where: str, extra: set[str] = frozenset()) -> Limits:  # type: ignore[assignment]
    _no_unknown(table, where, {"daily_usd", "monthly_usd"} | extra)
    values: dict[str, float] = {}
    for key in ("daily_usd", "monthly_usd"):
        if key in table:
            v = table[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"[{where}] {key} must be a non-negative number of US dollars, got {v!r}")
            values[key] = float(v)
    return Limits(**values)


def _budgets(table: dict[str, Any], providers: dict[str, ProviderPreset]) -> Budgets:
    mode = table.get("mode", "block")
    if mode not in BUDGET_MODES:
        raise ConfigError(f"[budgets] mode = {mode!r}; expected one of {', '.join(BUDGET_MODES)}")
    total = _limits(table, "budgets", {"mode", "providers", "clients"})
    scoped: dict[str, dict[str, Limits]] = {"providers": {}, "clients": {}}
    for kind in scoped:
        sub = _table(table, kind) if kind in table else {}
        for name, spec in sub.items():
            where = f"budgets.{kind}.{name}"
            if not isinstance(spec, dict):
                raise ConfigError(f"[{where}] must be a table")
            if kind == "providers" and name not in providers:
                raise ConfigError(f"[{where}] names no configured provider ({', '.join(sorted(providers))})")
            scoped[kind][name] = _limits(spec, where)
    return Budgets(mode, total, scoped["providers"], scoped["clients"])


_OTEL_KEYS = {"endpoint", "headers", "service_name", "traces", "metrics", "export_interval_s", "protocol"}
OTEL_PROTOCOLS = ("http/protobuf", "grpc")


def _otel(table: dict[str, Any]) -> Otel | None:
    """An ``[otel]`` table without ``endpoint`` is refused; one with both signals off exports nothing (None)."""
    _no_unknown(table, "otel", _OTEL_KEYS)
    if "endpoint" not in table:
        raise ConfigError('[otel] needs endpoint = "http://127.0.0.1:4318" (the collector\'s OTLP/HTTP base URL)')
    endpoint = _typed(table, "endpoint", str, "otel").strip().rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"[otel] endpoint must start with http:// or https://, got {endpoint!r}")
    for suffix in ("/v1/traces", "/v1/metrics"):
        endpoint = endpoint.removesuffix(suffix)
    values: dict[str, Any] = {"endpoint": endpoint}
    if "headers" in table:
        headers = _typed(table, "headers", dict, "otel")
        if not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError("[otel] headers must map header names to strings")
        values["headers"] = {str(k): v for k, v in headers.items()}
    if "service_name" in table:
        name = _typed(table, "service_name", str, "otel").strip()
        if not name:
            raise ConfigError("[otel] service_name must not be empty")
        values["service_name"] = name
    for key in ("traces", "metrics"):
        if key in table:
            values[key] = _typed(table, key, bool, "otel")
    if "export_interval_s" in table:
        v = table["export_interval_s"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ConfigError(f"[otel] export_interval_s must be a positive number of seconds, got {v!r}")
        values["export_interval_s"] = float(v)
    if "protocol" in table:
        protocol = _typed(table, "protocol", str, "otel").strip()
        if protocol not in OTEL_PROTOCOLS:
            raise ConfigError(f"[otel] protocol must be one of {', '.join(OTEL_PROTOCOLS)}, got {protocol!r}")
        if protocol == "grpc" and "/" in endpoint.split("://", 1)[1]:
            raise ConfigError(f'[otel] with protocol = "grpc" the endpoint is scheme://host:port, got {endpoint!r}')
        values["protocol"] = protocol
    otel = Otel(**values)
    return otel if otel.traces or otel.metrics else None


def _request_limits(table: dict[str, Any]) -> RequestLimits:
    _no_unknown(table, "limits", {"max_body_mb", "max_header_bytes", "max_headers", "max_messages", "max_parts"})
    values: dict[str, int] = {}
    if "max_body_mb" in table:
        mb = table["max_body_mb"]
        if isinstance(mb, bool) or not isinstance(mb, (int, float)) or mb <= 0:
            raise ConfigError(f"[limits] max_body_mb must be a positive number of MiB, got {mb!r}")
        values["max_body_bytes"] = int(mb * MIB)
    if "max_header_bytes" in table:  # below 1 KiB ordinary SDK requests would be refused
        values["max_header_bytes"] = positive_int(table, "max_header_bytes", "limits", minimum=1024)
    for key in ("max_headers", "max_messages", "max_parts"):
        if key in table:
            values[key] = positive_int(table, key, "limits")
    return RequestLimits(**values)


def _tui_keymap(table: dict[str, Any]) -> dict[str, str]:
    """``[tui] keymap = {"app.spend" = "S"}``: binding ids and key strings are checked by the TUI, which
    knows them; here only the shape (strings to non-empty strings)."""
    _no_unknown(table, "tui", {"keymap"})
    keymap: dict[str, str] = {}
    pending = list((_typed(table, "keymap", dict, "tui") if "keymap" in table else {}).items())
    while pending:
        binding, keys = pending.pop(0)
        if isinstance(keys, dict):  # unquoted dotted ids (app.spend = "S") arrive as nested tables
            pending.extend((f"{binding}.{k}", v) for k, v in keys.items())
        elif isinstance(keys, str) and keys.strip():
            keymap[binding] = keys.strip()
        else:
            raise ConfigError(f'[tui] keymap "{binding}" must be a key string such as "S" or "ctrl+s", got {keys!r}')
    return keymap


_PROVIDER_KEYS = {"adapter", "base_url", "key", "responses_api", "stream_usage", "models", "headers"}
_ALIAS_KEYS = {"targets", "strategy", "weights"}
