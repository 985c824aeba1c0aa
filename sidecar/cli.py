"""The ``sidecar`` command.

``sidecar`` / ``sidecar up`` runs proxy and TUI in one process; ``serve`` runs the proxy headless;
``tui`` attaches to a running proxy; ``demo`` runs everything against simulated providers with no keys;
``keys`` manages provider keys in the OS keyring; ``env`` prints shell lines for SDKs; ``doctor``
explains what is set up and what is missing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from sidecar import __version__
from sidecar.config import Config, ConfigError, load_config
from sidecar.shellenv import SHELLS, env_vars, guess_shell, render

log = logging.getLogger("sidecar")


def _global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """Options accepted both before and after the command (``sidecar --port 9 env`` = ``sidecar env --port 9``).

    The copies on subcommands default to SUPPRESS, so an option given before the command is not
    overwritten by the subcommand's default.
    """
    kw = {"default": argparse.SUPPRESS} if suppress else {}
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="config file (default: the platform config dir's config.toml)",
                        **({"default": None} | kw))
    common.add_argument("--host", help="address to listen on / connect to (default 127.0.0.1)",
                        **({"default": None} | kw))
    common.add_argument("--port", type=int, help="port (default 8787)", **({"default": None} | kw))
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging", **kw)
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _global_options(suppress=True)
    parser = argparse.ArgumentParser(
        prog="sidecar", parents=[_global_options(suppress=False)],
        description="A local LLM gateway: keyring-held keys, one endpoint for every SDK, metering and a TUI.",
    )
    parser.add_argument("--version", action="version", version=f"llm-sidecar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in (("up", "run the proxy and the terminal UI in one process (default)"),
                       ("serve", "run the proxy headless")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("--allow-remote", action="store_true",
                       help="allow a non-loopback --host (needs a client token or require_token)")
    tui = sub.add_parser("tui", parents=[common], help="attach the terminal UI to a running proxy")
    tui.add_argument("--url", help="the sidecar's URL (default http://HOST:PORT)")
    demo = sub.add_parser("demo", parents=[common],
                          help="simulated providers and traffic, live in the TUI (a printed table without a "
                               "terminal); no keys needed")
    demo.add_argument("--requests", type=int, default=14, help="printed demo: sample requests to send (default 14)")
    demo.add_argument("--exit", action="store_true", help="print the sample traffic and exit (no TUI)")
    demo.add_argument("--rate", type=float, default=2.0, help="live demo: mean requests per second (default 2)")
    keys = sub.add_parser("keys", parents=[common], help="provider keys in the OS keyring")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    for name, text in (("set", "store a key, read from stdin or a hidden prompt"), ("delete", "remove a key")):
        p = keys_sub.add_parser(name, parents=[common], help=text)
        p.add_argument("provider", help="provider id, e.g. openai, anthropic, gemini")
    keys_sub.add_parser("list", parents=[common], help="which providers have a key (masked)")
    env = sub.add_parser("env", parents=[common], help="shell lines pointing SDKs and agents at the sidecar")
    env.add_argument("--shell", choices=SHELLS, help="syntax (default: from $SHELL)")
    tokens = sub.add_parser("tokens", parents=[common], help="client tokens: one per local app")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    create = tokens_sub.add_parser("create", parents=[common], help="create a token and print it once")
    create.add_argument("name", help="the client's name (shown in the TUI, used by [budgets.clients.NAME])")
    create.add_argument("--ttl", type=float, help="expire after this many seconds (default: never)")
    tokens_sub.add_parser("list", parents=[common], help="token names, creation and expiry (never the tokens)")
    revoke = tokens_sub.add_parser("revoke", parents=[common], help="revoke every token with this name")
    revoke.add_argument("name")
    run = sub.add_parser("exec", parents=[common],
                         help="run a program with the sidecar env and its own short-lived client token")
    run.add_argument("--client", help="the client name (default: the command's basename)")
    run.add_argument("--ttl", type=float, default=12 * 3600,
                     help="token lifetime in seconds if the program outlives it (default 12 h)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    sub.add_parser("doctor", parents=[common], help="check keyring, config, data dir and the running proxy")
    models = sub.add_parser("models", parents=[common], help="model ids clients can send, with list prices")
    models.add_argument("--provider", help="only this provider's models (aliases are always listed)")
    models.add_argument("--format", dest="fmt", choices=("table", "csv", "json"), default="table")
    sub.add_parser("pause", parents=[common], help="stop all upstream traffic of the running proxy (503 to clients)")
    sub.add_parser("resume", parents=[common], help="let the running proxy's traffic through again")
    spend = sub.add_parser("spend", parents=[common], help="spend totals from the request log (no proxy needed)")
    spend.add_argument("--days", type=int, default=30, help="today and the N-1 UTC days before it (default 30)")
    spend.add_argument("--by", choices=("day", "provider", "model", "client"), default="day")
    spend.add_argument("--format", choices=("table", "csv", "json"), default="table", dest="fmt")
    prices = sub.add_parser("prices", parents=[common], help="the price catalog: update it, show a model's rates")
    prices_sub = prices.add_subparsers(dest="prices_command", metavar="ACTION", required=True)
    update = prices_sub.add_parser("update", parents=[common],
                                   help="download the latest genai-prices catalog (the only price fetch; opt-in)")
    update.add_argument("--url", help="catalog URL (default: $SIDECAR_PRICES_URL, else genai-prices' data.json)")
    show = prices_sub.add_parser("show", parents=[common], help="the rates the sidecar would use, and their source")
    show.add_argument("model", help="provider/model, a bare model name or an alias")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    if not args.verbose:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    command = args.command or "up"
    try:
        return _dispatch(command, args, config)
    except ConfigError as exc:  # found while starting, e.g. [otel] without the OpenTelemetry SDK installed
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _setup_logging(verbose: bool) -> None:
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.INFO)
    from sidecar import logsink

    logsink.install(logging.StreamHandler())


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config, explicit=args.config is not None)
    if args.host:
        config = replace(config, host=args.host)
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise ConfigError(f"--port must be 0-65535, got {args.port}")
        config = replace(config, port=args.port)
    return config


def _dispatch(command: str, args: argparse.Namespace, config: Config) -> int:
    if command in ("serve", "up"):
        refusal = _remote_refusal(config, getattr(args, "allow_remote", False))
        if refusal:
            print(f"error: {refusal}", file=sys.stderr)
            return 2
        return _run(_serve(config)) if command == "serve" else _up(config)
    if command == "tui":
        with _session_token(config, "tui"):
            return _tui(args.url or _local_url(config), config.tui_keymap)
    if command == "tokens":
        from sidecar.cmd_tokens import run_tokens

        return run_tokens(args, config)
    if command == "exec":
        from sidecar.cmd_tokens import run_exec

        return run_exec(args.cmd, client=args.client, ttl=args.ttl, config=config, base_url=_local_url(config))
    if command == "demo":
        from sidecar.demo import run_demo

        return _run(run_demo(config, requests=args.requests, stay_up=not args.exit, rate=max(args.rate, 0.0)))
    if command == "keys":
        return _keys(args, config)
    if command == "env":
        shell = args.shell or guess_shell(os.environ.get("SHELL"))
        sys.stdout.write(render(env_vars(_local_url(config)), shell))
        return 0
    if command in ("pause", "resume"):
        with _session_token(config, "cli"):
            return _pause(command, _local_url(config))
    if command == "spend":
        from sidecar.spend_report import run_spend

        from sidecar.pricing import load_catalog

        return run_spend(config.db_path, days=args.days, by=args.by, fmt=args.fmt,
                         prices=load_catalog(config.data_dir).label)
    if command == "prices":
        from sidecar.cmd_prices import run_prices

        return run_prices(args, config)
    if command == "models":
        from sidecar.cmd_models import run_models

        with _session_token(config, "cli"):
            return run_models(config, _local_url(config), provider=args.provider, fmt=args.fmt)
    if command == "doctor":
        from sidecar.doctor import run_doctor

        return run_doctor(config)
    raise AssertionError(command)


def _run(coro: object) -> int:
    from sidecar import loop

    try:
        return loop.run(coro)  # type: ignore[arg-type]  # uvloop where available (sidecar/loop.py)
    except OSError as exc:  # e.g. the port is taken
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _local_url(config: Config) -> str:
    host = config.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{config.port}" if ":" in host else f"http://{host}:{config.port}"


def _pause(command: str, url: str) -> int:
    """Flip the running proxy's brake through its control API; the state lives in that process."""
    import urllib.error
    import urllib.request

    import orjson

    try:
        token = os.environ.get("SIDECAR_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with urllib.request.urlopen(urllib.request.Request(f"{url}/_sidecar/{command}", method="POST",
                                                           data=b"", headers=headers), timeout=5) as resp:
            changed = orjson.loads(resp.read()).get("changed")
    except urllib.error.HTTPError as exc:
        print(f"error: the sidecar at {url} answered {exc.code} to {command}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"error: no sidecar is running at {url} ({reason}); start one with `sidecar serve`, "
              "or point at it with --host/--port", file=sys.stderr)
        return 1
    state = "paused: clients get a 503 until `sidecar resume`" if command == "pause" else "resumed"
    print(f"sidecar at {url} {state}" + ("" if changed else " (it already was)"))
    return 0


def _keys(args: argparse.Namespace, config: Config) -> int:
    from sidecar import cmd_keys
    from sidecar.keys import KeyringStore

    store = KeyringStore()
    if args.keys_command == "set":
        return cmd_keys.keys_set(config, store, args.provider)
    if args.keys_command == "delete":
        return cmd_keys.keys_delete(store, args.provider)
    return cmd_keys.keys_list(config, store)


async def _start(config: Config):  # noqa: ANN202 - returns (runner, url, app)
    from sidecar.app import build_app
    from sidecar.keys import KeyringStore
    from sidecar.server import start_server
    from sidecar.store import RequestStore

    for warning in config.warnings:
        log.warning("%s", warning)
    if not is_loopback_bind(config.host):
        _warn_remote(config)
        if config.host not in ("0.0.0.0", "::", "") and config.host.lower() not in config.allowed_hosts:
            # Clients reach it by this address: an IP literal or the name the user chose, never a rebound name.
            config = replace(config, allowed_hosts=(*config.allowed_hosts, config.host.lower()))
    store = RequestStore(config.db_path, body_cap=config.body_cap_bytes)
    app = build_app(config, keys=KeyringStore(), store=store)
    runner, url = await start_server(app, config.host, config.port)
    return runner, url, app


async def _serve(config: Config) -> int:
    from sidecar.server import wait_for_signal

    runner, url, _app = await _start(config)
    print(f"llm-sidecar {__version__} listening on {url}", flush=True)
    print(f"  config: {config.source or 'built-in presets (no config file)'}", flush=True)
    print(f"  store:  {config.db_path}", flush=True)
    print("  point SDKs here with: eval \"$(sidecar env)\"", flush=True)
    try:
        await wait_for_signal()
    finally:
        await runner.cleanup()
    return 0


def _up(config: Config) -> int:
    """Proxy and TUI in one process and one event loop; the TUI reads the proxy over loopback HTTP."""
    if not sys.stdout.isatty():
        print("`sidecar up` needs a terminal for its UI; use `sidecar serve` to run headless", file=sys.stderr)
        return 2
    try:
        from tui.app import SidecarApp
    except ImportError as exc:  # pragma: no cover - textual is a dependency, but be explicit
        print(f"the terminal UI is unavailable ({exc}); use `sidecar serve`", file=sys.stderr)
        return 1

    async def both() -> int:
        import secrets

        from sidecar.app import ACCESS

        runner, url, app = await _start(config)
        _log_to_file(config)  # log lines on the terminal would scribble over the UI
        token = "sct_" + secrets.token_urlsafe(24)  # known only to this process: its own TUI's token
        app[ACCESS].internal_tokens[token] = "tui"
        os.environ["SIDECAR_TOKEN"] = token
        try:
            await SidecarApp(url, keymap=config.tui_keymap).run_async()
        finally:
            os.environ.pop("SIDECAR_TOKEN", None)
            await runner.cleanup()
        return 0

    return _run(both())


LOOPBACK_NAMES = ("localhost",)


def is_loopback_bind(host: str) -> bool:
    import ipaddress

    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _remote_refusal(config: Config, allow_remote: bool) -> str | None:
    """Why a non-loopback bind is refused, or None when it may go ahead."""
    if is_loopback_bind(config.host):
        return None
    if not allow_remote:
        return (f"refusing to listen on {config.host}: that lets other machines use your provider keys. "
                "Pass --allow-remote to mean it (it also needs a client token: `sidecar tokens create NAME`, "
                "or [server] require_token = true)")
    from sidecar.tokens import TokenError, TokenStore

    try:
        has_token = any(not e.ephemeral for e in TokenStore(config.data_dir).list())
    except TokenError as exc:
        return str(exc)
    if not (has_token or config.require_token):
        return (f"refusing to listen on {config.host} without client tokens: create one first with "
                "`sidecar tokens create NAME` (or set [server] require_token = true)")
    return None


def _warn_remote(config: Config) -> None:
    bar = "!" * 78
    lines = [bar, f"!! WARNING: llm-sidecar is listening on {config.host}, reachable from other machines.",
             "!! Anyone with a client token can spend your provider keys; requests without one get 401.",
             "!! Traffic to the sidecar is plain HTTP: tokens and prompts cross the network unencrypted."]
    if config.host in ("0.0.0.0", "::", ""):
        lines.append("!! Remote clients must use a Host listed in [server] allowed_hosts, else they get 403.")
    lines.append(bar)
    for line in lines:
        print(line, file=sys.stderr, flush=True)
        if line != bar:
            log.warning("%s", line.strip("! "))


def _session_token(config: Config, name: str):  # noqa: ANN202 - a context manager yielding the token or None
    """An ephemeral token for a CLI command that talks to the running proxy (TUI, pause), exported as
    ``SIDECAR_TOKEN`` for the duration; nothing when the data dir is not writable."""
    import contextlib

    from sidecar.tokens import TokenError, TokenStore

    @contextlib.contextmanager
    def scope():  # noqa: ANN202
        if os.environ.get("SIDECAR_TOKEN"):
            yield os.environ["SIDECAR_TOKEN"]
            return
        cm = None
        try:
            store = TokenStore(config.data_dir)
            # An open proxy needs no token; and one it might not know (another data dir) would only get a 401.
            if config.require_token or any(not e.ephemeral for e in store.list()):
                cm = store.temporary(name, ttl=24 * 3600)
                os.environ["SIDECAR_TOKEN"] = cm.__enter__()
        except (TokenError, OSError):
            cm = None
        try:
            yield os.environ.get("SIDECAR_TOKEN")
        finally:
            if cm is not None:
                os.environ.pop("SIDECAR_TOKEN", None)
                cm.__exit__(None, None, None)

    return scope()


def _log_to_file(config: Config) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    from sidecar import logsink

    logsink.install(logging.FileHandler(config.data_dir / "sidecar.log", encoding="utf-8"))


def _tui(url: str, keymap: dict[str, str] | None = None) -> int:
    from tui import run

    return run(url, keymap)
