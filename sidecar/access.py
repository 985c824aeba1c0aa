"""Who may talk to the sidecar: checked first for every request, by the app's one middleware (`app.gateway`).

1. **Host** (DNS rebinding): a web page on ``evil.example`` whose DNS later points at 127.0.0.1 sends
   ``Host: evil.example``. Only loopback names and addresses (``localhost``, ``127.x.y.z``, ``[::1]``,
   any port), the address the sidecar was explicitly bound to, and ``[server] allowed_hosts`` pass; the rest
   get 403.
2. **Origin** (cross-origin browser requests): a request carrying an ``Origin`` header not listed in
   ``[server] allowed_origins`` gets 403. Allowed origins get CORS headers naming that origin only (never
   ``*``), and their preflights (OPTIONS) are answered; every other OPTIONS gets 403.
   Browser-looking headers that real CLIs send (``sec-fetch-mode: cors`` from Gemini CLI,
   ``anthropic-dangerous-direct-browser-access`` from Claude Code) are deliberately ignored.
3. **Tokens**: under ``/v1``, ``/v1beta``, ``/_sidecar`` (except ``/_sidecar/health``) and ``/metrics``, once a
   persistent client token exists or ``[server] require_token = true``, the request must carry a valid
   token as its API key (``Authorization: Bearer``, ``x-api-key``, ``x-goog-api-key``, ``api-key`` or
   ``?key=``): else 401. A presented ``sct_`` token that is unknown, revoked or expired is a 401 even when
   tokens are not required. The token's name becomes the request's client (see `client_of`).

Refusals are rendered in the caller's API format.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable

from aiohttp import web

from sidecar import formats
from sidecar.config import Config
from sidecar.tokens import TokenCache, looks_like_token

log = logging.getLogger("sidecar.access")

_RequestKey = getattr(web, "RequestKey", None)  # aiohttp >= 3.13; plain strings before that
CLIENT_KEY = _RequestKey("sidecar_client", str) if _RequestKey else "sidecar_client"
"""``request[CLIENT_KEY]``: the name of the token the request presented, if any."""
ORIGIN_KEY = _RequestKey("sidecar_cors_origin", str) if _RequestKey else "sidecar_cors_origin"

PROTECTED_PREFIXES = ("/v1/", "/v1beta/", "/_sidecar/", "/metrics")
OPEN_PATHS = frozenset({"/_sidecar/health"})
"""Liveness stays open so `sidecar doctor` and supervisors can tell the proxy is up; it shows no traffic."""

CORS_METHODS = "GET, POST, OPTIONS"
CORS_EXPOSE = "x-sidecar-request-id, x-sidecar-warning, retry-after"


def split_host(host: str) -> tuple[str, str | None]:
    """``"[::1]:8787"`` → (``"::1"``, ``"8787"``); ``"localhost"`` → (``"localhost"``, None)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return host, None
        name, rest = host[1:end], host[end + 1:]
        return name, rest[1:] if rest.startswith(":") else None
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, port
    return host, None


@functools.lru_cache(maxsize=256)  # checked on every request; clients send the same few Host values
def is_loopback_host(name: str) -> bool:
    name = name.rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Access:
    """The rules for one app: configured allowlists plus the live token file."""

    def __init__(self, config: Config, tokens: TokenCache, format_for_path: Callable[[str], str]) -> None:
        self.allowed_hosts = {h.lower() for h in config.allowed_hosts}
        self.allowed_origins = {o.lower().rstrip("/") for o in config.allowed_origins}
        self.require_token = config.require_token
        self.tokens = tokens
        self.format_for_path = format_for_path
        self.internal_tokens: dict[str, str] = {}
        """Tokens known only to this process (token → name), e.g. for the TUI of ``sidecar up``."""

    def host_allowed(self, raw: str | None) -> bool:
        if raw is None:
            return True  # HTTP/1.0 without Host: no browser sends that
        name, port = split_host(raw)
        if not name:
            return False
        if is_loopback_host(name):
            return True
        return name in self.allowed_hosts or (port is not None and f"{name}:{port}" in self.allowed_hosts)

    def origin_allowed(self, origin: str) -> bool:
        return origin.lower().rstrip("/") in self.allowed_origins

    def enforcing(self) -> bool:
        return self.require_token or self.tokens.enforcing

    def client_for(self, token: str) -> str | None:
        name = self.internal_tokens.get(token)
        return name if name is not None else self.tokens.lookup(token)

    def refuse(self, request: web.Request, status: int, message: str) -> web.Response:
        body = formats.module(self.format_for_path(request.path)).error_body(status, message)
        response = web.Response(status=status, body=body, content_type="application/json")
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="llm-sidecar"'
        return response


def presented_keys(request: web.Request) -> list[str]:
    """Every API key the request carries, in the places the SDKs put them."""
    keys = []
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        keys.append(auth[7:].strip())
    for header in ("x-api-key", "x-goog-api-key", "api-key"):
        value = request.headers.get(header)
        if value:
            keys.append(value.strip())
    if "key=" in request.query_string and "key" in request.query:  # parse the query only when it may hold one
        keys.append(request.query["key"].strip())
    return [k for k in keys if k]


def protected(path: str) -> bool:
    if path in OPEN_PATHS:
        return False
    return path.startswith(PROTECTED_PREFIXES) or path in ("/v1", "/v1beta", "/_sidecar")


def admit(access: Access, request: web.Request) -> web.Response | None:
    """The refusal (or CORS preflight answer) for ``request``, or None to let it through to its handler.

    A plain function rather than a middleware of its own: the app's one middleware (`sidecar.app.gateway`) calls
    it, because every middleware layer is a coroutine (and aiohttp adds one more once there is any) per request."""
    headers = request.headers
    if not access.host_allowed(headers.get("host")):
        log.warning("refused %s %s: Host %r is not loopback or allowlisted (DNS rebinding?)",
                    request.method, request.path, headers.get("host", "")[:100])
        return access.refuse(request, 403, "Host header not allowed: the sidecar answers only loopback "
                                           "hosts and [server] allowed_hosts")
    origin = headers.get("origin")
    if origin is not None:
        if not access.origin_allowed(origin):
            log.warning("refused %s %s from browser origin %r", request.method, request.path, origin[:100])
            return access.refuse(request, 403, "cross-origin requests are not allowed; add the origin to "
                                               "[server] allowed_origins to permit it")
        request[ORIGIN_KEY] = origin
        if request.method == "OPTIONS" and "access-control-request-method" in headers:
            return _preflight(request, origin)
    elif request.method == "OPTIONS":
        return access.refuse(request, 403, "OPTIONS is answered only as a CORS preflight of an allowed origin")
    if protected(request.path):
        client: str | None = None
        sidecar_tokens = [k for k in presented_keys(request) if looks_like_token(k)]
        for key in sidecar_tokens:
            client = access.client_for(key)
            if client is not None:
                break
        if client is None and (sidecar_tokens or access.enforcing()):
            why = ("the client token is unknown, revoked or expired" if sidecar_tokens
                   else "this sidecar requires a client token")
            return access.refuse(request, 401, f"{why}: send a token from `sidecar tokens create NAME` as "
                                               "the API key, or run the program with `sidecar exec -- ...`")
        if client is not None:
            request[CLIENT_KEY] = client
    return None


def _preflight(request: web.Request, origin: str) -> web.Response:
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": CORS_METHODS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }
    wanted = request.headers.get("access-control-request-headers")
    if wanted:
        headers["Access-Control-Allow-Headers"] = wanted
    return web.Response(status=204, headers=headers)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: an allowed origin's responses (streams too) name that origin, never ``*``."""
    origin = request.get(ORIGIN_KEY)
    if origin and "Access-Control-Allow-Origin" not in response.headers:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE
        response.headers.add("Vary", "Origin")


def client_of(request: web.Request) -> str | None:
    return request.get(CLIENT_KEY)
